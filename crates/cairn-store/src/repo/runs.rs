//! `RunRepo`: runs, their status and cost, and their checkpoints.

/// `RunRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! run_repo {
    ($store:ty) => {
        #[async_trait]
        impl RunRepo for $store {
            async fn create_run(&self, new: NewRun) -> cairn_core::Result<Run> {
                let at = now();
                let sql = concat!("INSERT INTO runs (", run_columns!(), ") VALUES ($1, $2, $3, $4, NULL, $5, $5, $6, NULL) RETURNING ", run_columns!());
                let row: RunRow = sqlx::query_as(sql)
                    .bind(RunId::new().0)
                    .bind(new.thread_id.0)
                    .bind(RunStatus::Queued.as_str())
                    .bind(new.created_by.0)
                    .bind(at)
                    .bind(new.trace_parent)
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("run")?;
                row.into_domain()
            }

            async fn run(&self, id: RunId) -> cairn_core::Result<Run> {
                let sql = concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1");
                let row: RunRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("run")?;
                row.into_domain()
            }

            async fn runs(&self, thread: ThreadId) -> cairn_core::Result<Vec<Run>> {
                let sql = concat!("SELECT ", run_columns!(), " FROM runs WHERE thread_id = $1 ORDER BY id");
                let rows: Vec<RunRow> = sqlx::query_as(sql).bind(thread.0).fetch_all(&self.pool).await.db()?;
                rows.into_iter().map(RunRow::into_domain).collect()
            }

            async fn run_counts(&self) -> cairn_core::Result<Vec<(RunStatus, u64)>> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                rows.into_iter().map(|(status, n)| Ok((parse(&status)?, u64::try_from(n).unwrap_or(0)))).collect()
            }

            async fn add_run_cost(&self, id: RunId, cost_usd: f64) -> cairn_core::Result<()> {
                let updated = sqlx::query("UPDATE runs SET cost_usd = cost_usd + $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(cost_usd)
                    .execute(&self.pool)
                    .await
                    .db()?
                    .rows_affected();
                match updated {
                    0 => Err(cairn_core::Error::NotFound { entity: "run" }),
                    _ => Ok(()),
                }
            }

            async fn set_run_status(
                &self,
                id: RunId,
                status: RunStatus,
                error: Option<String>,
                fence: Option<Fence>,
            ) -> cairn_core::Result<Run> {
                Ok(self.set_run_status_logged(id, status, error, fence, None, None).await?.0)
            }

            async fn set_run_status_logged(
                &self,
                id: RunId,
                status: RunStatus,
                error: Option<String>,
                fence: Option<Fence>,
                event: Option<NewEvent>,
                notice: Option<cairn_core::hooks::Notice>,
            ) -> cairn_core::Result<(Run, Option<Event>)> {
                // The guards in the WHERE clause make "finished runs stay
                // finished" and "a superseded worker writes nothing" hold even
                // when two workers race. The run's row is locked before the
                // thread's, as every fenced append does.
                let sql = concat!(
                    "UPDATE runs SET status = $2, error = $3, updated_at = $4 \
                     WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled') \
                     AND ($5 IS NULL OR lease_generation = $5) RETURNING ",
                    run_columns!()
                );
                let mut tx = self.pool.begin().await.db()?;
                let row: Option<RunRow> = sqlx::query_as(sql)
                    .bind(id.0)
                    .bind(status.as_str())
                    .bind(error)
                    .bind(now())
                    .bind(fence.map(|f| f.generation))
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                if let Some(row) = row {
                    let run = row.into_domain()?;
                    let logged = match event {
                        Some(event) => Some(append_one!(tx, run.thread_id, event)),
                        None => None,
                    };
                    if let Some(notice) = &notice {
                        queue_notice!(tx, thread: run.thread_id, notice);
                    }
                    tx.commit().await.db()?;
                    return Ok((run, logged));
                }
                tx.rollback().await.db()?;
                // No such run, or it already finished, or it was claimed since.
                let found: Option<(String, i64)> =
                    sqlx::query_as("SELECT status, lease_generation FROM runs WHERE id = $1")
                        .bind(id.0)
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                match found {
                    None => Err(cairn_core::Error::NotFound { entity: "run" }),
                    Some((status, _)) if parse::<RunStatus>(&status)?.is_terminal() => {
                        Err(cairn_core::Error::Conflict { entity: "finished run" })
                    }
                    Some(_) => match fence {
                        Some(fence) => Err(fenced(fence)),
                        None => Err(cairn_core::Error::NotFound { entity: "run" }),
                    },
                }
            }

            async fn claim_run(&self, id: RunId) -> cairn_core::Result<Fence> {
                let generation: i64 = sqlx::query_scalar(
                    "UPDATE runs SET lease_generation = lease_generation + 1 WHERE id = $1 RETURNING lease_generation",
                )
                .bind(id.0)
                .fetch_one(&self.pool)
                .await
                .db_entity("run")?;
                Ok(Fence { run: id, generation })
            }

            async fn put_checkpoint(&self, checkpoint: NewCheckpoint, fence: Option<Fence>) -> cairn_core::Result<()> {
                let at = now();
                let Some(fence) = fence else {
                    step_write!(
                        self,
                        sqlx::query(
                            "INSERT INTO checkpoints (run_id, step, state, created_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (run_id, step) DO UPDATE SET state = excluded.state, created_at = excluded.created_at",
                        )
                        .bind(checkpoint.run_id.0)
                        .bind(checkpoint.step)
                        .bind(Json(&checkpoint.state))
                        .bind(at)
                    )
                    .db_entity("checkpoint")?;
                    return Ok(());
                };
                let saved = step_write!(
                    self,
                    sqlx::query(Self::FENCED_CHECKPOINT_SQL)
                        .bind(checkpoint.run_id.0)
                        .bind(checkpoint.step)
                        .bind(Json(&checkpoint.state))
                        .bind(at)
                        .bind(fence.generation)
                )
                .db_entity("checkpoint")?
                .rows_affected();
                match saved {
                    0 => match self.run(checkpoint.run_id).await {
                        Ok(_) => Err(fenced(fence)),
                        Err(error) => Err(error),
                    },
                    _ => Ok(()),
                }
            }

            async fn put_checkpoint_while_waiting(&self, checkpoint: NewCheckpoint) -> cairn_core::Result<bool> {
                let saved = sqlx::query(Self::WAITING_CHECKPOINT_SQL)
                    .bind(checkpoint.run_id.0)
                    .bind(checkpoint.step)
                    .bind(Json(&checkpoint.state))
                    .bind(now())
                    .execute(&self.pool)
                    .await
                    .db_entity("checkpoint")?
                    .rows_affected();
                if saved == 0 {
                    self.run(checkpoint.run_id).await?;
                }
                Ok(saved > 0)
            }

            async fn latest_checkpoint(&self, run: RunId) -> cairn_core::Result<Option<Checkpoint>> {
                let row: Option<CheckpointRow> = sqlx::query_as(
                    "SELECT run_id, step, state, created_at FROM checkpoints WHERE run_id = $1 ORDER BY step DESC LIMIT 1",
                )
                .bind(run.0)
                .fetch_optional(&self.pool)
                .await
                .db()?;
                Ok(row.map(Checkpoint::from))
            }

            async fn put_lane_result(
                &self,
                run: RunId,
                step: i64,
                lane: i64,
                state: serde_json::Value,
                fence: Option<Fence>,
            ) -> cairn_core::Result<()> {
                let sql = if fence.is_some() {
                    Self::FENCED_LANE_SQL
                } else {
                    "INSERT INTO run_lanes (run_id, step, lane, state, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (run_id, step, lane) DO NOTHING"
                };
                let query = sqlx::query(sql).bind(run.0).bind(step).bind(lane).bind(Json(state)).bind(now());
                let query = match fence {
                    Some(fence) => query.bind(fence.generation),
                    None => query,
                };
                let saved = query.execute(&self.pool).await.db_entity("run")?.rows_affected();
                match fence {
                    // Nothing inserted: a result was kept already, or the run
                    // was claimed since (or is gone).
                    Some(fence) if saved == 0 && self.lane_result(run, step, lane).await?.is_none() => {
                        self.run(run).await?;
                        Err(fenced(fence))
                    }
                    _ => Ok(()),
                }
            }

            async fn lane_result(&self, run: RunId, step: i64, lane: i64) -> cairn_core::Result<Option<serde_json::Value>> {
                let row: Option<(Json<serde_json::Value>,)> =
                    sqlx::query_as("SELECT state FROM run_lanes WHERE run_id = $1 AND step = $2 AND lane = $3")
                        .bind(run.0)
                        .bind(step)
                        .bind(lane)
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                Ok(row.map(|(state,)| state.0))
            }

            async fn checkpoints(&self, run: RunId) -> cairn_core::Result<Vec<Checkpoint>> {
                let rows: Vec<CheckpointRow> = sqlx::query_as(
                    "SELECT run_id, step, state, created_at FROM checkpoints WHERE run_id = $1 ORDER BY step",
                )
                .bind(run.0)
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(rows.into_iter().map(Checkpoint::from).collect())
            }
        }
    };
}

pub(super) use run_repo;
