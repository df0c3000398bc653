//! Model calls: streaming a reply into events, accounting its usage and
//! cost, and keeping the prompt within the model's context window.

use super::*;

/// Recent messages a summary leaves as they are.
pub(super) const KEEP_RECENT: usize = 6;
/// Characters of earlier turns a summary request carries at most.
pub(super) const SUMMARY_INPUT_CHARS: usize = 60_000;
/// Tokens kept free for the reply.
pub(super) const REPLY_TOKENS: usize = 4096;

/// OpenAI's reasoning models think in hidden tokens counted against the same
/// `max_completion_tokens` as the reply: without room for them, a reply can
/// come back empty.
pub(super) const REASONING_TOKENS: u32 = 16_384;

pub(super) fn reasoning_room(info: &cairn_llm::ModelInfo) -> u32 {
    let caps = &info.capabilities;
    if caps.reasoning && caps.token_limit == cairn_llm::TokenLimit::MaxCompletionTokens { REASONING_TOKENS } else { 0 }
}

/// A conservative token count for text: about four characters a token.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4) + 4
}

/// The estimated size of a prompt: the instructions and the messages.
pub fn prompt_tokens(system: &str, messages: &[Message]) -> usize {
    estimate_tokens(system)
        + messages.iter().map(|m| estimate_tokens(&m.content) + m.images.len() * IMAGE_TOKENS).sum::<usize>()
}

/// What an image costs in a prompt, about (providers bill a chart-sized
/// image at roughly a thousand tokens).
pub(super) const IMAGE_TOKENS: usize = 1_000;
/// The tokens a prompt may take in a context window: the window less the
/// reply's room and a margin for the estimate's error.
pub fn context_budget(context_tokens: u32) -> usize {
    let window = context_tokens as usize;
    window.saturating_sub(REPLY_TOKENS.min(window / 4)).saturating_sub(window / 10)
}

impl Agent {
    /// One model call: the reply streams out as `token` events, and its
    /// usage and cost are counted (in the state, the run's cost and a
    /// `usage` event). `None` when the run was cancelled meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn call_model(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        model_id: Option<&str>,
        system: String,
        messages: Vec<Message>,
    ) -> Result<Option<String>, AgentError> {
        self.model_call(state, run, events, ctx, model_id, system, messages, true).await
    }

    /// [`Agent::call_model`]; without `stream_tokens`, the reply is not
    /// sent out as it comes (an internal call, such as a summary).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn model_call(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        model_id: Option<&str>,
        system: String,
        messages: Vec<Message>,
        stream_tokens: bool,
    ) -> Result<Option<String>, AgentError> {
        let chosen = model_id.or(state.model.as_deref()).or(run.model.as_deref());
        let (model, info) = self.models.get(chosen)?;
        // A span of the call, named and described as OpenTelemetry's
        // conventions for generative AI say.
        let span = tracing::info_span!(
            "model.call",
            otel.name = %format!("chat {}", info.model),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "chat",
            gen_ai.request.model = %info.model,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            cairn.model = %info.id,
        );
        async {
            let mut measured = CallMetrics::start(&info.id);
            let request = ChatRequest {
                model: info.model.clone(),
                system: Some(system),
                messages,
                max_tokens: (info.context_tokens / 4).clamp(256, REPLY_TOKENS as u32) + reasoning_room(&info),
                temperature: None,
                stop: Vec::new(),
                ..ChatRequest::default()
            };
            // The provider's own words: "the model refused the request: …",
            // "the provider refused the key: …", "the provider has no model …".
            let mut stream = model.stream(&request).await?;
            let mut reply = String::new();
            let mut pending = String::new();
            // The model's reasoning, streamed apart and never part of the reply.
            let mut thinking = String::new();
            let mut last_flush = Instant::now();
            let mut usage = Usage::default();
            loop {
                // A cancel stops the model call at once, not at the end of its reply.
                let delta = tokio::select! {
                    delta = stream.next() => delta,
                    () = async {
                        while !ctx.cancelled() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    } => {
                        measured.outcome = "cancelled";
                        return Ok(None);
                    }
                };
                let Some(delta) = delta else { break };
                match delta.map_err(|e| format!("the model's reply broke off: {e}"))? {
                    Delta::Text(text) => {
                        reply.push_str(&text);
                        pending.push_str(&text);
                        // Token deltas go out in small batches, not one write each.
                        if stream_tokens && last_flush.elapsed() >= Duration::from_millis(50) {
                            events.emit(RunEvent::Token(step_text(std::mem::take(&mut pending), state))).await;
                            last_flush = Instant::now();
                        }
                    }
                    Delta::Reasoning(text) => {
                        thinking.push_str(&text);
                        if last_flush.elapsed() >= Duration::from_millis(50) {
                            events.emit(RunEvent::Reasoning(step_text(std::mem::take(&mut thinking), state))).await;
                            last_flush = Instant::now();
                        }
                    }
                    Delta::Done { usage: used, .. } => usage = used,
                }
            }
            if !thinking.is_empty() {
                events.emit(RunEvent::Reasoning(step_text(thinking, state))).await;
            }
            if stream_tokens && !pending.is_empty() {
                events.emit(RunEvent::Token(step_text(pending, state))).await;
            }
            state.turns += 1;
            state.usage.add(usage);
            let cost = info.cost(usage);
            measured.finished(usage, cost);
            state.cost_usd += cost;
            if let Err(error) = self.store.add_run_cost(run.run, cost).await {
                tracing::warn!(%error, "the cost of a model call could not be recorded");
            }
            events
                .emit(RunEvent::Usage(UsageRecorded {
                    model: info.id.clone(),
                    user: run.user,
                    tokens: usage,
                    cost_usd: cost,
                    saved_usd: info.saved_by_cache(usage),
                }))
                .await;
            Ok(Some(reply))
        }
        .instrument(span)
        .await
    }

    /// Keeps the prompt within the model's context window: when the
    /// conversation is too long, the turns between the first message (the
    /// task) and the last few are summarised by the model into the first
    /// message — a checkpointed summary, never a silent cut. What still does
    /// not fit is shortened visibly (marked where it was cut).
    pub(super) async fn fit_context(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        model_id: Option<&str>,
        system: &str,
    ) -> Result<(), AgentError> {
        let chosen = model_id.or(state.model.as_deref()).or(run.model.as_deref());
        let (_, info) = self.models.get(chosen)?;
        let limit = context_budget(info.context_tokens);
        let before = prompt_tokens(system, &state.messages);
        if before <= limit {
            return Ok(());
        }
        if estimate_tokens(system) >= limit {
            return Err(AgentError::Failed(format!(
                "the instructions alone do not fit the context of {} ({} tokens)",
                info.id, info.context_tokens
            )));
        }
        let mut summarised = 0;
        for keep in [KEEP_RECENT, 2] {
            if state.messages.len() <= keep + 1 || prompt_tokens(system, &state.messages) <= limit {
                continue;
            }
            let older: Vec<Message> = state.messages[1..state.messages.len() - keep].to_vec();
            let transcript: Vec<String> = older
                .iter()
                .map(|m| format!("{:?}: {}", m.role, shorten(&m.content, SUMMARY_INPUT_CHARS / older.len().max(1))))
                .collect();
            let request = vec![Message::user(format!(
                "Summarise these earlier turns of an agent's work for the agent itself. Keep every fact, number, \
                 variable and file name, decision and open question; drop the rest.\n\n{}",
                transcript.join("\n\n")
            ))];
            let system = "You write short, exact summaries of an agent's earlier work.".to_owned();
            let Some(summary) = self.model_call(state, run, events, ctx, model_id, system, request, false).await?
            else {
                return Ok(());
            };
            let first = state.messages.first().map(|m| m.content.clone()).unwrap_or_default();
            let recent = state.messages.split_off(state.messages.len() - keep);
            state.messages = vec![Message::user(format!(
                "{first}\n\n[A summary of {} earlier turns, made to fit the model's context:]\n{summary}",
                older.len()
            ))];
            state.messages.extend(recent);
            summarised += older.len();
        }
        // What still does not fit is cut, visibly, longest message first.
        let mut cut = 0;
        while prompt_tokens(system, &state.messages) > limit {
            let over = (prompt_tokens(system, &state.messages) - limit) * 4 + 64;
            let Some(longest) = state.messages.iter_mut().max_by_key(|m| m.content.chars().count()) else { break };
            let count = longest.content.chars().count();
            if count <= 200 {
                return Err(AgentError::Failed(format!("the conversation does not fit the context of {}", info.id)));
            }
            longest.content = shorten(&longest.content, count.saturating_sub(over).max(200));
            cut += 1;
        }
        let after = prompt_tokens(system, &state.messages);
        events
            .emit(RunEvent::ContextSummarized(ContextSummarized {
                turns: summarised,
                shortened: cut,
                tokens_before: before,
                tokens_after: after,
                task: task_of(state),
            }))
            .await;
        Ok(())
    }
}

/// A model call as the metrics see it (`cairn_model_calls_total` by model and
/// outcome, `cairn_model_call_seconds`, tokens and cost by model). A call
/// that ends any other way than `finished` or a cancel counts as an error.
struct CallMetrics {
    model: String,
    started: Instant,
    outcome: &'static str,
}

impl CallMetrics {
    fn start(model: &str) -> CallMetrics {
        CallMetrics { model: model.to_owned(), started: Instant::now(), outcome: "error" }
    }

    fn finished(&mut self, usage: Usage, cost_usd: f64) {
        self.outcome = "ok";
        let span = tracing::Span::current();
        span.record("gen_ai.usage.input_tokens", usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", usage.output_tokens);
        let model = self.model.clone();
        for (kind, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ] {
            metrics::counter!("cairn_model_tokens_total", "model" => model.clone(), "kind" => kind).increment(tokens);
        }
        // Whole micro-dollars: Prometheus counters count, they do not add fractions.
        metrics::counter!("cairn_model_cost_microusd_total", "model" => model)
            .increment((cost_usd * 1e6).round() as u64);
    }
}

impl Drop for CallMetrics {
    fn drop(&mut self) {
        let model = std::mem::take(&mut self.model);
        if self.outcome == "error" {
            tracing::Span::current().record("otel.status_code", "error");
        }
        metrics::histogram!("cairn_model_call_seconds", "model" => model.clone())
            .record(self.started.elapsed().as_secs_f64());
        metrics::counter!("cairn_model_calls_total", "model" => model, "outcome" => self.outcome).increment(1);
    }
}
