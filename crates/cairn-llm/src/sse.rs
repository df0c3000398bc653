//! Server-sent events, parsed incrementally from a byte stream: each event
//! is its `event:` name (if any) and its `data:` lines joined.

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// Collects bytes and hands out whole events.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    buffer: Vec<u8>,
}

impl Parser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let text = &self.buffer;
            let (end, gap) = [&b"\r\n\r\n"[..], b"\n\n"]
                .iter()
                .filter_map(|sep| text.windows(sep.len()).position(|w| w == *sep).map(|at| (at, sep.len())))
                .min()?;
            let block = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
            self.buffer.drain(..end + gap);
            let mut name = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if name.is_some() || !data.is_empty() {
                return Some(Event { name, data: data.join("\n") });
            }
            // A comment or keep-alive: look at the next block.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Event, Parser};

    #[test]
    fn events_are_assembled_across_chunks() {
        let mut parser = Parser::default();
        parser.push(b": keep-alive\n\nevent: message_start\ndata: {\"a\":");
        assert_eq!(parser.next_event(), None);
        parser.push(b"1}\n\ndata: [DONE]\r\n\r\n");
        assert_eq!(parser.next_event(), Some(Event { name: Some("message_start".into()), data: "{\"a\":1}".into() }));
        assert_eq!(parser.next_event(), Some(Event { name: None, data: "[DONE]".into() }));
        assert_eq!(parser.next_event(), None);
    }
}
