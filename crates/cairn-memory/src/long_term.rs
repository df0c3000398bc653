//! Long-term project memory: what the agent (or a member) asked to remember
//! and the text of library files, in chunks embedded by
//! `llm.embedding_model` and kept in the store, found again by similarity.
//! A file saved into the library is indexed here in the background
//! ([`Memory::index_in_background`]) and forgotten when deleted. The
//! `remember` and `recall` tools, and the API's memory search, go through
//! [`Memory`].

use std::sync::Arc;

use cairn_core::model::{FileRecord, MemoryChunk, NewMemoryChunk};
use cairn_core::store::Store;
use cairn_core::{ProjectId, UserId};
use cairn_llm::Embedder;

/// Characters of one chunk, about 300 tokens.
const CHUNK_CHARS: usize = 1200;
/// Characters a chunk repeats from the end of the one before.
const OVERLAP_CHARS: usize = 200;
/// The longest text remembered at once.
pub const MAX_TEXT_CHARS: usize = 200_000;
/// The longest query.
pub const MAX_QUERY_CHARS: usize = 2000;
/// The most results a search returns.
pub const MAX_RESULTS: i64 = 50;
/// Library files larger than this are not indexed.
pub const MAX_INDEXED_BYTES: i64 = 2 << 20;

/// Whether a library file's text goes into memory: text formats of at most
/// [`MAX_INDEXED_BYTES`].
pub fn indexable(file: &FileRecord) -> bool {
    let extension = file.path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let texty = file.content_type.starts_with("text/")
        || ["application/json", "application/xml"].iter().any(|t| file.content_type.starts_with(t))
        || ["md", "txt", "csv", "tsv", "json", "py", "sql", "yaml", "yml", "html", "xml", "log"]
            .contains(&extension.as_str());
    texty && file.size > 0 && file.size <= MAX_INDEXED_BYTES
}

/// What memory answers when no embedding model is configured.
pub const MEMORY_OFF: &str = "project memory is off: no embedding model is configured (llm.embedding_model)";

/// Why memory could not help.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// No embedding model is configured, or the database cannot search
    /// vectors (PostgreSQL without pgvector).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    /// The embedding provider failed.
    #[error("the embedding model failed: {0}")]
    Embedding(String),
    #[error(transparent)]
    Store(cairn_core::Error),
}

impl From<cairn_core::Error> for MemoryError {
    fn from(error: cairn_core::Error) -> Self {
        match error {
            cairn_core::Error::Unavailable { reason, .. } if reason.contains("pgvector") => {
                MemoryError::Unavailable(reason)
            }
            other => MemoryError::Store(other),
        }
    }
}

/// Project memory over the store and the embedding model.
#[derive(Debug, Clone)]
pub struct Memory {
    store: Arc<dyn Store>,
    embedder: Option<Embedder>,
}

/// Splits text into chunks of about [`CHUNK_CHARS`], cut at a paragraph,
/// line or sentence end where one is near, each repeating the last
/// [`OVERLAP_CHARS`] of the one before.
pub fn chunks(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + CHUNK_CHARS).min(chars.len());
        if end < chars.len() {
            // Prefer a natural break in the last third of the chunk.
            let window = start + CHUNK_CHARS * 2 / 3..end;
            let cut = ["\n\n", "\n", ". "].iter().find_map(|mark| {
                let marks: Vec<char> = mark.chars().collect();
                window.clone().rev().find(|&i| chars[i..].starts_with(&marks)).map(|i| i + marks.len())
            });
            end = cut.unwrap_or(end);
        }
        let piece: String = chars[start..end].iter().collect();
        if !piece.trim().is_empty() {
            out.push(piece.trim().to_owned());
        }
        if end >= chars.len() {
            break;
        }
        start = end.saturating_sub(OVERLAP_CHARS).max(start + 1);
    }
    out
}

impl Memory {
    pub fn new(store: Arc<dyn Store>, embedder: Option<Embedder>) -> Memory {
        Memory { store, embedder }
    }

    fn embedder(&self) -> Result<&Embedder, MemoryError> {
        self.embedder.as_ref().ok_or_else(|| MemoryError::Unavailable(MEMORY_OFF.into()))
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        self.embedder()?.embed(texts).await.map_err(|e| MemoryError::Embedding(e.to_string()))
    }

    /// Remembers a text (in chunks) for the project; `source` is `note` or
    /// `file:<path>`.
    pub async fn remember(
        &self,
        project: ProjectId,
        user: Option<UserId>,
        source: &str,
        text: &str,
    ) -> Result<Vec<MemoryChunk>, MemoryError> {
        let count = text.chars().count();
        if text.trim().is_empty() || count > MAX_TEXT_CHARS {
            return Err(MemoryError::Invalid(format!("a text to remember has 1 to {MAX_TEXT_CHARS} characters")));
        }
        let pieces = chunks(text);
        let vectors = self.embed(&pieces).await?;
        let new = pieces
            .into_iter()
            .zip(vectors)
            .map(|(text, embedding)| NewMemoryChunk {
                project_id: project,
                source: source.to_owned(),
                text,
                embedding,
                created_by: user,
            })
            .collect();
        Ok(self.store.add_memory(new).await?)
    }

    /// Indexes a library file's text again: its earlier chunks go.
    pub async fn index_file(
        &self,
        project: ProjectId,
        user: Option<UserId>,
        path: &str,
        text: &str,
    ) -> Result<usize, MemoryError> {
        let source = format!("file:{path}");
        self.store.forget_memory(project, &source).await?;
        let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
        if text.trim().is_empty() {
            return Ok(0);
        }
        Ok(self.remember(project, user, &source, &text).await?.len())
    }

    /// Indexes a library file's newest version in the background, when
    /// memory is on and the file is text (see [`indexable`]); failures are
    /// logged, and the upload they follow stands.
    pub fn index_in_background(&self, files: cairn_files::Files, file: FileRecord) {
        if self.embedder.is_none() || !indexable(&file) {
            return;
        }
        let memory = self.clone();
        tokio::spawn(async move {
            let text = match files.read_latest(file.project_id, &file.path).await {
                Ok(download) => {
                    let mut body = download.body;
                    let mut bytes = Vec::new();
                    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
                        match chunk {
                            Ok(chunk) => bytes.extend_from_slice(&chunk),
                            Err(error) => {
                                tracing::warn!(%error, path = %file.path, "a file could not be read for memory");
                                return;
                            }
                        }
                    }
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                Err(error) => {
                    tracing::warn!(%error, path = %file.path, "a file could not be read for memory");
                    return;
                }
            };
            if let Err(error) = memory.index_file(file.project_id, file.created_by, &file.path, &text).await {
                tracing::warn!(%error, path = %file.path, "a file could not be indexed into memory");
            }
        });
    }

    /// Forgets the text of library files that were deleted.
    pub async fn forget_files(&self, project: ProjectId, paths: &[String]) {
        for path in paths {
            if let Err(error) = self.store.forget_memory(project, &format!("file:{path}")).await {
                tracing::warn!(%error, %path, "a deleted file's text stays in memory");
            }
        }
    }

    /// The project's memories most like `query`, best first.
    pub async fn recall(
        &self,
        project: ProjectId,
        query: &str,
        limit: i64,
    ) -> Result<Vec<(MemoryChunk, f32)>, MemoryError> {
        if query.trim().is_empty() || query.chars().count() > MAX_QUERY_CHARS {
            return Err(MemoryError::Invalid(format!("a query has 1 to {MAX_QUERY_CHARS} characters")));
        }
        let vector = self.embed(&[query.to_owned()]).await?.pop().unwrap_or_default();
        Ok(self.store.search_memory(project, &vector, limit.clamp(1, MAX_RESULTS)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_into_overlapping_chunks_at_natural_breaks() {
        assert_eq!(chunks("short note"), ["short note"]);
        assert!(chunks("   ").is_empty());
        let paragraph = "word ".repeat(180); // 900 characters
        let text = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
        let pieces = chunks(&text);
        assert!(pieces.len() >= 3, "{}", pieces.len());
        assert!(pieces.iter().all(|p| p.chars().count() <= CHUNK_CHARS));
        // Every part of the text is in some chunk.
        let covered: usize = pieces.iter().map(|p| p.split_whitespace().count()).sum();
        assert!(covered >= 540, "{covered}");
        let unbroken = "x".repeat(3000);
        let pieces = chunks(&unbroken);
        assert_eq!(pieces[0].len(), CHUNK_CHARS);
        assert!(pieces.len() == 3, "cut where it must, with overlap: {}", pieces.len());
    }
}
