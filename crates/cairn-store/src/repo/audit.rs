//! `AuditRepo`: the audit log, written once (the database refuses updates)
//! and read newest first through a filter.

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(super) fn like_prefix(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// `AuditRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! audit_repo {
    ($store:ty) => {
        #[async_trait]
        impl AuditRepo for $store {
            async fn record_audit(&self, entry: NewAuditEntry) -> cairn_core::Result<AuditEntry> {
                let row: AuditRow = sqlx::query_as(
                    "INSERT INTO audit_log (id, actor_id, project_id, action, target, outcome, detail, client_addr, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     RETURNING id, actor_id, project_id, action, target, outcome, detail, client_addr, created_at",
                )
                .bind(AuditId::new().0)
                .bind(entry.actor.map(|u| u.0))
                .bind(entry.project_id.map(|p| p.0))
                .bind(entry.action)
                .bind(entry.target)
                .bind(entry.outcome.as_str())
                .bind(Json(entry.detail))
                .bind(entry.client_addr)
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .db_entity("audit entry")?;
                row.into_domain()
            }

            async fn audit_log(&self, filter: &AuditFilter, limit: i64) -> cairn_core::Result<Vec<AuditEntry>> {
                // A family of actions (`run.`) by prefix, one action exactly.
                let (exact, prefix) = match filter.action.as_deref() {
                    Some(family) if family.ends_with('.') => (None, Some(audit::like_prefix(family))),
                    Some(action) => (Some(action.to_owned()), None),
                    None => (None, None),
                };
                // UUID v7 ids grow with time, so paging by id pages by time.
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT id, actor_id, project_id, action, target, outcome, detail, client_addr, created_at \
                     FROM audit_log WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR actor_id = $2) \
                     AND ($3 IS NULL OR project_id = $3) AND ($4 IS NULL OR action = $4) \
                     AND ($5 IS NULL OR action LIKE $5 ESCAPE '\\') AND ($6 IS NULL OR outcome = $6) \
                     AND ($7 IS NULL OR created_at >= $7) AND ($8 IS NULL OR created_at < $8) \
                     ORDER BY id DESC LIMIT $9",
                )
                .bind(filter.before.map(|b| b.0))
                .bind(filter.actor.map(|u| u.0))
                .bind(filter.project.map(|p| p.0))
                .bind(exact)
                .bind(prefix)
                .bind(filter.outcome.map(|o| o.as_str()))
                .bind(filter.since)
                .bind(filter.until)
                .bind(limit.max(0))
                .fetch_all(&self.pool)
                .await
                .db()?;
                rows.into_iter().map(AuditRow::into_domain).collect()
            }
        }
    };
}

pub(super) use audit_repo;
