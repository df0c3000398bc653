//! `AuditRepo`: the audit log, written once and paged newest first.

/// `AuditRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! audit_repo {
    ($store:ty) => {
        #[async_trait]
        impl AuditRepo for $store {
            async fn record_audit(&self, entry: NewAuditEntry) -> cairn_core::Result<AuditEntry> {
                let row: AuditRow = sqlx::query_as(
                    "INSERT INTO audit_log (id, actor_id, project_id, action, detail, client_addr, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING id, actor_id, project_id, action, detail, client_addr, created_at",
                )
                .bind(AuditId::new().0)
                .bind(entry.actor.map(|u| u.0))
                .bind(entry.project_id.map(|p| p.0))
                .bind(entry.action)
                .bind(Json(entry.detail))
                .bind(entry.client_addr)
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .db_entity("audit entry")?;
                Ok(row.into())
            }

            async fn audit_log(&self, before: Option<AuditId>, limit: i64) -> cairn_core::Result<Vec<AuditEntry>> {
                // UUID v7 ids grow with time, so paging by id pages by time.
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT id, actor_id, project_id, action, detail, client_addr, created_at FROM audit_log \
                     WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                )
                .bind(before.map(|b| b.0))
                .bind(limit.max(0))
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(rows.into_iter().map(AuditEntry::from).collect())
            }
        }
    };
}

pub(super) use audit_repo;
