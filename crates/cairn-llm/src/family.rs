//! What a model accepts and costs, by family: built-in defaults that the
//! configuration may override per model. A provider's official API and an
//! OpenAI-compatible server differ even for one model name, so the kind of
//! provider counts too.

use serde::Serialize;

/// Which parameter caps the length of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenLimit {
    /// `max_tokens`: Anthropic, and OpenAI-compatible servers.
    MaxTokens,
    /// `max_completion_tokens`: OpenAI's own API, which refuses `max_tokens`
    /// for its reasoning models (o-series, GPT-5).
    MaxCompletionTokens,
}

/// Which of OpenAI's APIs a model is called through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `/chat/completions`: every OpenAI-compatible server, Azure, and
    /// OpenAI's chat models.
    ChatCompletions,
    /// `/responses`: OpenAI's own reasoning models, whose reasoning
    /// summaries only this API returns.
    Responses,
}

/// What a model accepts, and its list prices.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Capabilities {
    /// The API it is called through (OpenAI's kinds only; others ignore it).
    pub api: Api,
    pub token_limit: TokenLimit,
    /// Whether it accepts a `temperature` (OpenAI's reasoning models refuse
    /// any but the default).
    pub temperature: bool,
    /// Whether it accepts images in messages.
    pub images: bool,
    /// Whether it reasons before answering (o-series, GPT-5, Claude's
    /// extended thinking).
    pub reasoning: bool,
    /// `reasoning_effort` sent to OpenAI reasoning models (`minimal`, `low`,
    /// `medium`, `high`); `null`: the provider's default.
    pub reasoning_effort: Option<String>,
    /// Anthropic extended thinking: its budget in tokens (0: off, the
    /// default, since thinking is billed as output).
    pub thinking_tokens: u32,
    /// The context window in tokens.
    pub context_tokens: u32,
    /// US dollars per million input and output tokens (0: not priced).
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// US dollars per million prompt tokens read from the provider's cache.
    pub cache_read_usd_per_mtok: f64,
    /// US dollars per million prompt tokens written to it.
    pub cache_write_usd_per_mtok: f64,
}

/// List prices per million tokens (input, cached input, output), in US
/// dollars, as the providers published them for these families;
/// configuration overrides them. Longer prefixes first: the first match wins.
/// Anthropic's cache reads cost a tenth of input and writes a quarter more
/// (see [`Capabilities::defaults`]); OpenAI charges nothing extra to write.
const PRICES: &[(&str, f64, f64, f64)] = &[
    ("gpt-5-nano", 0.05, 0.005, 0.40),
    ("gpt-5-mini", 0.25, 0.025, 2.00),
    ("gpt-5", 1.25, 0.125, 10.00),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60),
    ("gpt-4.1", 2.00, 0.50, 8.00),
    ("gpt-4o-mini", 0.15, 0.075, 0.60),
    ("gpt-4o", 2.50, 1.25, 10.00),
    ("o4-mini", 1.10, 0.275, 4.40),
    ("o3-mini", 1.10, 0.55, 4.40),
    ("o3", 2.00, 0.50, 8.00),
    ("o1-mini", 1.10, 0.55, 4.40),
    ("o1", 15.00, 7.50, 60.00),
    ("claude-opus-4", 15.00, 1.50, 75.00),
    ("claude-sonnet-4", 3.00, 0.30, 15.00),
    ("claude-3-7-sonnet", 3.00, 0.30, 15.00),
    ("claude-3-5-sonnet", 3.00, 0.30, 15.00),
    ("claude-haiku-4", 1.00, 0.10, 5.00),
    ("claude-3-5-haiku", 0.80, 0.08, 4.00),
];

/// OpenAI's reasoning families: `o1`, `o3`, `o4-mini`, `gpt-5…`.
fn openai_reasoning(name: &str) -> bool {
    let name = name.rsplit('/').next().unwrap_or(name);
    name.starts_with("gpt-5")
        || ["o1", "o3", "o4"].iter().any(|family| name == *family || name.starts_with(&format!("{family}-")))
}

impl Capabilities {
    /// The defaults for `model` served by a provider of `kind` (`openai`,
    /// `azure-openai`, `anthropic` or an OpenAI-compatible kind).
    pub fn defaults(kind: &str, model: &str) -> Capabilities {
        let name = model.to_ascii_lowercase();
        let short = name.rsplit('/').next().unwrap_or(&name).to_owned();
        let (input, cache_read, output) = PRICES
            .iter()
            .find(|(prefix, ..)| short.starts_with(prefix))
            .map_or((0.0, 0.0, 0.0), |(_, i, c, o)| (*i, *c, *o));
        let reasoning_openai = openai_reasoning(&short);
        let claude = short.starts_with("claude");
        let thinking_claude = ["claude-3-7", "claude-opus-4", "claude-sonnet-4", "claude-haiku-4", "claude-4"]
            .iter()
            .any(|family| short.starts_with(family));
        let official_openai = matches!(kind, "openai" | "azure-openai");
        Capabilities {
            api: if kind == "openai" && reasoning_openai { Api::Responses } else { Api::ChatCompletions },
            // OpenAI's own API takes max_completion_tokens for every model (and
            // requires it for reasoning ones); other servers know max_tokens.
            token_limit: if official_openai { TokenLimit::MaxCompletionTokens } else { TokenLimit::MaxTokens },
            temperature: !(official_openai && reasoning_openai),
            images: claude
                || short.starts_with("gpt-4o")
                || short.starts_with("gpt-4.1")
                || short.starts_with("gpt-5")
                || short.starts_with("o3")
                || short.starts_with("o4")
                || short.contains("vision")
                || short.starts_with("gemini"),
            reasoning: reasoning_openai || thinking_claude,
            reasoning_effort: None,
            thinking_tokens: 0,
            context_tokens: if claude {
                200_000
            } else if short.starts_with("gpt-4.1") {
                1_047_576
            } else if short.starts_with("gpt-5") {
                400_000
            } else if reasoning_openai {
                200_000
            } else {
                128_000
            },
            input_usd_per_mtok: input,
            output_usd_per_mtok: output,
            cache_read_usd_per_mtok: cache_read,
            // Anthropic: a quarter more than input for the five-minute cache.
            cache_write_usd_per_mtok: if claude { input * 1.25 } else { input },
        }
    }

    /// The defaults with what the configuration says of this model.
    pub fn configured(kind: &str, model: &cairn_config::LlmModel) -> Capabilities {
        let mut caps = Capabilities::defaults(kind, &model.name);
        match model.api.as_str() {
            "chat_completions" => caps.api = Api::ChatCompletions,
            "responses" => caps.api = Api::Responses,
            _ => {}
        }
        match model.token_limit.as_str() {
            "max_tokens" => caps.token_limit = TokenLimit::MaxTokens,
            "max_completion_tokens" => caps.token_limit = TokenLimit::MaxCompletionTokens,
            _ => {}
        }
        if let Some(temperature) = model.temperature {
            caps.temperature = temperature;
        }
        if let Some(images) = model.images {
            caps.images = images;
        }
        if let Some(reasoning) = model.reasoning {
            caps.reasoning = reasoning;
        }
        if !model.reasoning_effort.is_empty() {
            caps.reasoning_effort = Some(model.reasoning_effort.clone());
        }
        if let Some(budget) = model.thinking_tokens {
            caps.thinking_tokens = budget;
        }
        if model.context_tokens > 0 {
            caps.context_tokens = model.context_tokens;
        }
        if let Some(price) = model.input_usd_per_mtok {
            // Cache prices follow a configured input price unless set too.
            let (read, write) = match caps.input_usd_per_mtok {
                known if known > 0.0 => (caps.cache_read_usd_per_mtok / known, caps.cache_write_usd_per_mtok / known),
                _ => (1.0, 1.0),
            };
            caps.input_usd_per_mtok = price;
            caps.cache_read_usd_per_mtok = price * read;
            caps.cache_write_usd_per_mtok = price * write;
        }
        if let Some(price) = model.cache_read_usd_per_mtok {
            caps.cache_read_usd_per_mtok = price;
        }
        if let Some(price) = model.cache_write_usd_per_mtok {
            caps.cache_write_usd_per_mtok = price;
        }
        if let Some(price) = model.output_usd_per_mtok {
            caps.output_usd_per_mtok = price;
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_reasoning_models_take_max_completion_tokens_and_no_temperature() {
        for model in ["gpt-5", "gpt-5-mini", "o3", "o4-mini", "o1-preview"] {
            let caps = Capabilities::defaults("openai", model);
            assert_eq!(
                (caps.api, caps.token_limit, caps.temperature, caps.reasoning),
                (Api::Responses, TokenLimit::MaxCompletionTokens, false, true),
                "{model}"
            );
        }
        let chat = Capabilities::defaults("openai", "gpt-4o-mini");
        assert_eq!(
            (chat.api, chat.token_limit, chat.temperature, chat.images),
            (Api::ChatCompletions, TokenLimit::MaxCompletionTokens, true, true)
        );
        assert_eq!((chat.input_usd_per_mtok, chat.output_usd_per_mtok), (0.15, 0.60), "the mini's price, not gpt-4o's");
        // A compatible server keeps max_tokens and temperature, whatever the name.
        let served = Capabilities::defaults("openai-compatible", "o3");
        assert_eq!(
            (served.api, served.token_limit, served.temperature),
            (Api::ChatCompletions, TokenLimit::MaxTokens, true)
        );
        // Azure's deployments stay on Chat Completions.
        assert_eq!(Capabilities::defaults("azure-openai", "o3").api, Api::ChatCompletions);
        // Names that merely start with the letters are not the o-series.
        assert!(!Capabilities::defaults("openai", "omni-moderation").reasoning);
    }

    #[test]
    fn configuration_overrides_the_family() {
        let model = cairn_config::LlmModel {
            name: "gpt-5".into(),
            api: "chat_completions".into(),
            token_limit: "max_tokens".into(),
            temperature: Some(true),
            images: Some(false),
            reasoning: None,
            reasoning_effort: "low".into(),
            context_tokens: 32_000,
            input_usd_per_mtok: Some(1.0),
            ..Default::default()
        };
        let caps = Capabilities::configured("openai", &model);
        assert_eq!((caps.api, caps.token_limit), (Api::ChatCompletions, TokenLimit::MaxTokens));
        assert!(caps.temperature && !caps.images && caps.reasoning);
        assert_eq!((caps.reasoning_effort.as_deref(), caps.context_tokens), (Some("low"), 32_000));
        assert_eq!((caps.input_usd_per_mtok, caps.output_usd_per_mtok), (1.0, 10.0));
        assert!((caps.cache_read_usd_per_mtok - 0.1).abs() < 1e-12, "the family's cache discount follows the price");
        let claude = Capabilities::defaults("anthropic", "claude-sonnet-4-5");
        assert_eq!((claude.cache_read_usd_per_mtok, claude.cache_write_usd_per_mtok), (0.30, 3.75));
    }
}
