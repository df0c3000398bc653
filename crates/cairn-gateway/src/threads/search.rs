//! Finding threads: by title or message text, across the caller's projects.

use axum::extract::{Query, State};
use cairn_core::ProjectId;

use crate::authn::Authenticated;
use crate::wire::threads::{SearchQuery, ThreadMatchResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

/// Threads a search returns at most.
const MAX_RESULTS: i64 = 50;
/// Characters of a matching message shown around the match.
const SNIPPET_BEFORE: usize = 60;
const SNIPPET_AFTER: usize = 120;

/// Threads whose title or messages hold the text, in the caller's projects
/// (a key: its project), most recently active first.
#[utoipa::path(get, path = "/search", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "The threads found", body = Vec<ThreadMatchResponse>),
        (status = 422, description = "`invalid_input` (an empty or overlong text)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub(super) async fn search_threads(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<SearchQuery>,
) -> Result<ApiJson<Vec<ThreadMatchResponse>>, ApiError> {
    let text = query.q.trim();
    if text.is_empty() || text.chars().count() > 200 {
        return Err(ApiError::Invalid { code: "invalid_input", detail: "search for 1 to 200 characters".into() });
    }
    let limit = query.limit.unwrap_or(20).clamp(1, MAX_RESULTS);
    let projects: Vec<_> = state
        .auth
        .projects(&principal)
        .await?
        .into_iter()
        .map(|(project, _)| project)
        .filter(|p| query.project_id.is_none_or(|only| p.id == only))
        .collect();
    let ids: Vec<ProjectId> = projects.iter().map(|p| p.id).collect();
    let found = state.store.search_threads(&ids, text, limit).await?;
    let name = |id: ProjectId| projects.iter().find(|p| p.id == id).map(|p| p.name.clone()).unwrap_or_default();
    Ok(ApiJson(
        found
            .into_iter()
            .map(|m| ThreadMatchResponse {
                project_name: name(m.thread.project_id),
                snippet: m.snippet.map(|s| snippet(&s, text)),
                thread: m.thread.into(),
            })
            .collect(),
    ))
}

/// The part of `content` around the first place it holds `text` (in any
/// case), with an ellipsis where it was cut.
fn snippet(content: &str, text: &str) -> String {
    let chars: Vec<char> = content.chars().collect();
    let lower: Vec<char> = chars.iter().flat_map(|c| c.to_lowercase()).collect();
    let wanted: Vec<char> = text.to_lowercase().chars().collect();
    // Lower-casing keeps the length for all but a few letters; where it does
    // not, the start of the message is shown.
    let at = if lower.len() == chars.len() {
        lower.windows(wanted.len().max(1)).position(|w| w == wanted.as_slice()).unwrap_or(0)
    } else {
        0
    };
    let start = at.saturating_sub(SNIPPET_BEFORE);
    let end = (at + wanted.len() + SNIPPET_AFTER).min(chars.len());
    let mut cut: String = chars[start..end].iter().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ");
    if start > 0 {
        cut.insert(0, '…');
    }
    if end < chars.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::snippet;

    #[test]
    fn a_snippet_is_cut_around_the_match() {
        assert_eq!(snippet("Chart the SALES", "sales"), "Chart the SALES");
        let long = format!("{} needle {}", "a ".repeat(100), "b ".repeat(100));
        let cut = snippet(&long, "NEEDLE");
        assert!(cut.starts_with('…') && cut.ends_with('…') && cut.contains("needle"), "{cut}");
        assert!(cut.chars().count() < 200, "{cut}");
        assert_eq!(snippet("line one\n\nline   two", "two"), "line one line two");
    }
}
