//! `FileRepo`: a project's versioned files, moved, deleted and counted.

/// `FileRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! file_repo {
    ($store:ty) => {
        #[async_trait]
        impl FileRepo for $store {
            async fn insert_file(&self, new: NewFile) -> cairn_core::Result<FileRecord> {
                let sql = concat!(
                    "INSERT INTO files (",
                    file_columns!(),
                    ") SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5, $6, $7, $8, $9, $10, $11 \
                     FROM files WHERE project_id = $2 AND path = $3 RETURNING ",
                    file_columns!()
                );
                // Two uploads to one path at once may pick the same version;
                // the unique index refuses the second, which then tries again.
                let mut attempts = 0;
                loop {
                    let query = sqlx::query_as(if new.fence.is_some() { Self::FENCED_FILE_SQL } else { sql });
                    let mut query = query
                        .bind(new.id.0)
                        .bind(new.project_id.0)
                        .bind(&new.path)
                        .bind(new.size)
                        .bind(&new.content_type)
                        .bind(&new.sha256)
                        .bind(&new.object_key)
                        .bind(new.created_by.map(|u| u.0))
                        .bind(new.run_id.map(|r| r.0))
                        .bind(new.step)
                        .bind(now());
                    if let Some(fence) = new.fence {
                        query = query.bind(fence.run.0).bind(fence.generation);
                    }
                    let inserted: Result<Option<FileRow>, _> = query.fetch_optional(&self.pool).await;
                    match inserted.db_entity("file") {
                        Err(cairn_core::Error::Conflict { .. }) if attempts < 5 => attempts += 1,
                        Ok(Some(row)) => return Ok(FileRecord::from(row)),
                        // Only a fenced insert inserts nothing: the run was
                        // claimed since (or is gone).
                        Ok(None) => {
                            let Some(fence) = new.fence else { return Err(cairn_core::Error::NotFound { entity: "file" }) };
                            return match self.run(fence.run).await {
                                Ok(_) => Err(fenced(fence)),
                                Err(error) => Err(error),
                            };
                        }
                        Err(other) => return Err(other),
                    }
                }
            }

            async fn file(&self, id: FileId) -> cairn_core::Result<FileRecord> {
                let sql = concat!("SELECT ", file_columns!(), " FROM files WHERE id = $1");
                let row: FileRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("file")?;
                Ok(row.into())
            }

            async fn files(&self, project: ProjectId, prefix: &str) -> cairn_core::Result<Vec<FileRecord>> {
                let sql = concat!(
                    "SELECT ",
                    file_columns!(),
                    " FROM files f WHERE project_id = $1 AND substr(path, 1, length($2)) = $2 \
                     AND version = (SELECT MAX(version) FROM files g WHERE g.project_id = f.project_id AND g.path = f.path) \
                     ORDER BY path"
                );
                let rows: Vec<FileRow> = sqlx::query_as(sql).bind(project.0).bind(prefix).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(FileRecord::from).collect())
            }

            async fn file_versions(&self, project: ProjectId, path: &str) -> cairn_core::Result<Vec<FileRecord>> {
                let sql = concat!("SELECT ", file_columns!(), " FROM files WHERE project_id = $1 AND path = $2 ORDER BY version DESC");
                let rows: Vec<FileRow> = sqlx::query_as(sql).bind(project.0).bind(path).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(FileRecord::from).collect())
            }

            async fn move_files(&self, project: ProjectId, from: &str, to: &str, folder: bool) -> cairn_core::Result<u64> {
                let mut tx = self.begin_write().await?;
                let taken: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM files WHERE project_id = $1 \
                     AND (path = $2 OR substr(path, 1, length($2) + 1) = $2 || '/') LIMIT 1",
                )
                .bind(project.0)
                .bind(to)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
                if taken.is_some() {
                    return Err(cairn_core::Error::Conflict { entity: "file" });
                }
                let moved = if folder {
                    sqlx::query(
                        "UPDATE files SET path = $3 || substr(path, length($2) + 1) \
                         WHERE project_id = $1 AND substr(path, 1, length($2) + 1) = $2 || '/'",
                    )
                } else {
                    sqlx::query("UPDATE files SET path = $3 WHERE project_id = $1 AND path = $2")
                }
                .bind(project.0)
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await
                .db_entity("file")?
                .rows_affected();
                if moved == 0 {
                    return Err(cairn_core::Error::NotFound { entity: "file" });
                }
                tx.commit().await.db()?;
                Ok(moved)
            }

            async fn delete_files(&self, project: ProjectId, path: &str, folder: bool) -> cairn_core::Result<Vec<FileRecord>> {
                let rows: Vec<FileRow> = if folder {
                    let sql = concat!(
                        "DELETE FROM files WHERE project_id = $1 AND substr(path, 1, length($2) + 1) = $2 || '/' RETURNING ",
                        file_columns!()
                    );
                    sqlx::query_as(sql).bind(project.0).bind(path).fetch_all(&self.pool).await.db()?
                } else {
                    let sql = concat!("DELETE FROM files WHERE project_id = $1 AND path = $2 RETURNING ", file_columns!());
                    sqlx::query_as(sql).bind(project.0).bind(path).fetch_all(&self.pool).await.db()?
                };
                if rows.is_empty() {
                    return Err(cairn_core::Error::NotFound { entity: "file" });
                }
                Ok(rows.into_iter().map(FileRecord::from).collect())
            }

            async fn project_usage(&self, project: ProjectId) -> cairn_core::Result<i64> {
                let used: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(size) AS BIGINT) FROM files WHERE project_id = $1")
                    .bind(project.0)
                    .fetch_one(&self.pool)
                    .await
                    .db()?;
                Ok(used.unwrap_or(0))
            }
        }
    };
}

pub(super) use file_repo;
