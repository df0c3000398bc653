//! `web_fetch`: a page or file fetched by the host (the sandbox needs no
//! network for it), returned as readable Markdown, or saved into the
//! workspace.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{Args, Kind, Param, Tool, ToolContext, ToolError, ToolSpec};

/// Markdown returned at most (the rest is cut, with a note).
const MAX_MARKDOWN_CHARS: usize = 100_000;

/// Readable Markdown of an HTML page: the main content when the page has
/// an article-like body, else the whole body; links are kept.
pub(crate) fn html_to_markdown(html: &str, url: &str) -> (String, String) {
    let config = dom_smoothie::Config { text_mode: dom_smoothie::TextMode::Markdown, ..Default::default() };
    let article = dom_smoothie::Readability::new(html, Some(url), Some(config)).ok().and_then(|mut r| r.parse().ok());
    match article {
        Some(article) if article.text_content.trim().len() > 40 => {
            (article.title.clone(), article.text_content.to_string())
        }
        _ => {
            let document = dom_query::Document::from(html);
            let title = document.select("title").text().trim().to_owned();
            let markdown = match document.select("body").nodes().first() {
                Some(body) => body.md(None),
                None => document.md(None),
            };
            (title, markdown.to_string())
        }
    }
}

fn cut(text: String) -> String {
    if text.chars().count() <= MAX_MARKDOWN_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_MARKDOWN_CHARS).collect();
    cut.push_str("\n\n[… the page continues; save it with save_as to read everything]");
    cut
}

fn is_text(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(essence.as_str(), "application/json" | "application/xml" | "application/javascript")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
}

#[derive(Debug)]
pub(crate) struct WebFetch;

#[async_trait]
impl Tool for WebFetch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "web_fetch",
            description: "Fetch a web page or file over HTTP(S).\n\nAn HTML page comes back as readable \
                          Markdown (its main content, links kept) with its title; other text as it is. \
                          With `save_as`, or for binary content (PDF, images, archives), the bytes are saved \
                          into the workspace instead and the result says where. Returns {url, status, \
                          content_type, title?, markdown? | text? | saved_to?, size}.",
            params: vec![
                Param::required("url", Kind::Str, "an http:// or https:// URL"),
                Param::optional("save_as", Kind::Str, "a workspace path to save the bytes to", Value::Null),
            ],
            returns: "dict",
            timeout: Duration::from_secs(60),
            python_body: None,
        }
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let fetched = ctx.services.http.get(args.str("url")?).await?;
        let url = fetched.url.to_string();
        let mut result = json!({
            "url": url,
            "status": fetched.status,
            "content_type": fetched.content_type,
            "size": fetched.body.len(),
        });
        let save_as = args.opt_str("save_as").map(str::to_owned).or_else(|| {
            (!is_text(&fetched.content_type)).then(|| {
                let name = fetched.url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default();
                format!("downloads/{}", if name.is_empty() { "download.bin" } else { name })
            })
        });
        if let Some(path) = save_as {
            let entry = ctx.services.sandboxes.write_file(ctx.sandbox, &path, fetched.body.to_vec()).await?;
            result["saved_to"] = json!(entry.path);
            return Ok(result);
        }
        let text = String::from_utf8_lossy(&fetched.body).into_owned();
        if fetched.content_type.to_ascii_lowercase().contains("html") {
            let (title, markdown) = html_to_markdown(&text, &url);
            result["title"] = json!(title);
            result["markdown"] = json!(cut(markdown));
        } else {
            result["text"] = json!(cut(text));
        }
        Ok(result)
    }
}
