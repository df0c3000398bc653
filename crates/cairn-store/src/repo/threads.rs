//! `ThreadRepo`: threads, their messages and their numbered event logs.

/// `ThreadRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! thread_repo {
    ($store:ty) => {
        impl $store {
            /// Stores a message (a run's answer when `run` is given: once per
            /// run, the one stored before coming back with `false`).
            async fn post_message(
                &self,
                new: NewMessage,
                run: Option<RunId>,
                fence: Option<Fence>,
            ) -> cairn_core::Result<(Message, bool)> {
                let mut tx = self.pool.begin().await.db()?;
                check_fence!(tx, fence);
                // A conflict is a run's second answer (kept: the first), or a
                // second message of the same origin (refused).
                let origin = new.origin.clone();
                let row: Option<MessageRow> = sqlx::query_as(
                    "INSERT INTO messages \
                     (id, thread_id, role, author_id, content, attachments, created_at, run_id, origin) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING \
                     RETURNING id, thread_id, role, author_id, content, attachments, created_at",
                )
                .bind(MessageId::new().0)
                .bind(new.thread_id.0)
                .bind(new.role.as_str())
                .bind(new.author.map(|u| u.0))
                .bind(new.content)
                .bind(serde_json::to_string(&new.attachments).unwrap_or_else(|_| "[]".to_owned()))
                .bind(now())
                .bind(run.map(|r| r.0))
                .bind(origin.as_deref())
                .fetch_optional(&mut *tx)
                .await
                .db_entity("message")?;
                let (row, created) = match row {
                    Some(row) => (row, true),
                    None if run.is_none() => return Err(cairn_core::Error::Conflict { entity: "message" }),
                    None => {
                        let row: MessageRow = sqlx::query_as(
                            "SELECT id, thread_id, role, author_id, content, attachments, created_at FROM messages \
                             WHERE run_id = $1",
                        )
                        .bind(run.map(|r| r.0))
                        .fetch_one(&mut *tx)
                        .await
                        .db_entity("message")?;
                        (row, false)
                    }
                };
                tx.commit().await.db()?;
                Ok((row.into_domain()?, created))
            }
        }

        #[async_trait]
        impl ThreadRepo for $store {
            async fn create_thread(&self, new: NewThread) -> cairn_core::Result<Thread> {
                let sql = concat!(
                    "INSERT INTO threads (",
                    thread_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING ",
                    thread_columns!()
                );
                let row: ThreadRow = sqlx::query_as(sql)
                    .bind(ThreadId::new().0)
                    .bind(new.project_id.0)
                    .bind(new.title)
                    .bind(new.created_by.0)
                    .bind(now())
                    .bind(new.model)
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("thread")?;
                Ok(row.into())
            }

            async fn thread(&self, id: ThreadId) -> cairn_core::Result<Thread> {
                let sql = concat!("SELECT ", thread_columns!(), " FROM threads WHERE id = $1 AND deleted_at IS NULL");
                let row: ThreadRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("thread")?;
                Ok(row.into())
            }

            async fn rename_thread(&self, id: ThreadId, title: String) -> cairn_core::Result<Thread> {
                let sql = concat!(
                    "UPDATE threads SET title = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
                    thread_columns!()
                );
                let row: ThreadRow =
                    sqlx::query_as(sql).bind(id.0).bind(title).fetch_one(&self.pool).await.db_entity("thread")?;
                Ok(row.into())
            }

            async fn threads(&self, project: ProjectId) -> cairn_core::Result<Vec<Thread>> {
                let sql = concat!(
                    "SELECT ",
                    thread_columns!(),
                    " FROM threads WHERE project_id = $1 AND deleted_at IS NULL ORDER BY ",
                    last_active!("threads"),
                    " DESC, id DESC"
                );
                let rows: Vec<ThreadRow> = sqlx::query_as(sql).bind(project.0).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(Thread::from).collect())
            }

            async fn search_threads(
                &self,
                projects: &[ProjectId],
                text: &str,
                limit: i64,
            ) -> cairn_core::Result<Vec<ThreadMatch>> {
                if projects.is_empty() || text.is_empty() {
                    return Ok(Vec::new());
                }
                // `%`, `_` and the escape itself are taken literally.
                let pattern =
                    format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
                let list: Vec<String> = (0..projects.len()).map(|i| format!("${}", i + 3)).collect();
                let sql = format!(
                    "SELECT t.id, t.project_id, t.title, t.created_by, t.created_at, t.last_event_seq, t.model, \
                     (SELECT m.content FROM messages m WHERE m.thread_id = t.id \
                      AND lower(m.content) LIKE $1 ESCAPE '\\' ORDER BY m.id LIMIT 1) AS snippet \
                     FROM threads t WHERE t.deleted_at IS NULL AND t.project_id IN ({}) \
                     AND (lower(t.title) LIKE $1 ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m \
                      WHERE m.thread_id = t.id AND lower(m.content) LIKE $1 ESCAPE '\\')) \
                     ORDER BY {} DESC, t.id DESC LIMIT $2",
                    list.join(", "),
                    last_active!("t"),
                );
                let mut query = sqlx::query_as::<_, ThreadMatchRow>(sqlx::AssertSqlSafe(sql)).bind(pattern).bind(limit);
                for project in projects {
                    query = query.bind(project.0);
                }
                let rows = query.fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(|r| ThreadMatch { thread: r.thread.into(), snippet: r.snippet }).collect())
            }

            async fn append_message(&self, new: NewMessage, fence: Option<Fence>) -> cairn_core::Result<Message> {
                Ok(self.post_message(new, None, fence).await?.0)
            }

            async fn append_answer(
                &self,
                new: NewMessage,
                run: RunId,
                fence: Option<Fence>,
            ) -> cairn_core::Result<(Message, bool)> {
                self.post_message(new, Some(run), fence).await
            }

            async fn messages(&self, thread: ThreadId) -> cairn_core::Result<Vec<Message>> {
                let rows: Vec<MessageRow> = sqlx::query_as(
                    "SELECT id, thread_id, role, author_id, content, attachments, created_at FROM messages \
                     WHERE thread_id = $1 ORDER BY id",
                )
                .bind(thread.0)
                .fetch_all(&self.pool)
                .await
                .db()?;
                rows.into_iter().map(MessageRow::into_domain).collect()
            }

            async fn message_by_origin(&self, origin: &str) -> cairn_core::Result<Option<Message>> {
                let row: Option<MessageRow> = sqlx::query_as(
                    "SELECT id, thread_id, role, author_id, content, attachments, created_at FROM messages \
                     WHERE origin = $1",
                )
                .bind(origin)
                .fetch_optional(&self.pool)
                .await
                .db()?;
                row.map(MessageRow::into_domain).transpose()
            }

            async fn run_answer(&self, run: RunId) -> cairn_core::Result<Option<String>> {
                let answer: Option<String> =
                    sqlx::query_scalar("SELECT content FROM messages WHERE run_id = $1 AND role = 'assistant'")
                        .bind(run.0)
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                Ok(answer)
            }

            async fn append_events_noticed(
                &self,
                thread: ThreadId,
                events: Vec<NewEvent>,
                fence: Option<Fence>,
                notice: Option<cairn_core::hooks::Notice>,
            ) -> cairn_core::Result<Vec<Event>> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
                let at = now();
                let mut tx = self.pool.begin().await.db()?;
                check_fence!(tx, fence);
                // Reserving the numbers by bumping the thread's counter first takes
                // the row's write lock, so concurrent appenders queue here and each
                // gets its own consecutive block.
                let last: i64 = sqlx::query_scalar(
                    "UPDATE threads SET last_event_seq = last_event_seq + $2 WHERE id = $1 RETURNING last_event_seq",
                )
                .bind(thread.0)
                .bind(count)
                .fetch_one(&mut *tx)
                .await
                .db_entity("thread")?;
                let mut stored = Vec::with_capacity(events.len());
                for (seq, event) in (last - count + 1..).zip(events) {
                    stored.push(insert_event!(tx, thread, seq, event, at));
                }
                if let Some(notice) = &notice {
                    queue_notice!(tx, thread: thread, notice);
                }
                tx.commit().await.db()?;
                Ok(stored)
            }

            async fn events_after(&self, thread: ThreadId, after: i64, limit: i64) -> cairn_core::Result<Vec<Event>> {
                let sql = concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE thread_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                );
                let rows: Vec<EventRow> = sqlx::query_as(sql)
                    .bind(thread.0)
                    .bind(after)
                    .bind(limit.max(0))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                Ok(rows.into_iter().map(Event::from).collect())
            }
        }
    };
}

pub(super) use thread_repo;
