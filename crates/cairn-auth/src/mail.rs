//! Outgoing e-mail: SMTP when configured, otherwise the development outbox,
//! a folder of `.eml` files in the data dir that any mail client opens.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::{Error, Result};

/// One plain-text message.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    async fn send(&self, email: Email) -> Result<()>;
}

fn build(from: &Mailbox, email: Email) -> Result<Message> {
    let to: Mailbox = email.to.parse().map_err(|e| Error::Mail(format!("bad recipient `{}`: {e}", email.to)))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(email.body)
        .map_err(|e| Error::Mail(e.to_string()))
}

/// Writes each message to `dir` as `<time>-<id>.eml`.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    from: Mailbox,
}

impl Outbox {
    pub fn new(dir: PathBuf, from: &str) -> Result<Outbox> {
        let from = from.parse().map_err(|e| Error::Mail(format!("bad sender `{from}`: {e}")))?;
        Ok(Outbox { dir, from })
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, email: Email) -> Result<()> {
        let message = build(&self.from, email)?;
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| Error::Mail(e.to_string()))?;
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let path = self.dir.join(format!("{stamp}-{}.eml", crate::tokens::random_token(6)));
        tokio::fs::write(&path, message.formatted()).await.map_err(|e| Error::Mail(e.to_string()))?;
        tracing::info!(path = %path.display(), "e-mail written to the outbox");
        Ok(())
    }
}

/// Sends through an SMTP server, with credentials in the URL:
/// `smtps://user:pass@host:465` (TLS from the start),
/// `smtp://user:pass@host:587?tls=required` (STARTTLS), or `smtp://host:25`
/// (no TLS: only for a relay on the same machine or network).
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp").field("from", &self.from).finish_non_exhaustive()
    }
}

impl Smtp {
    pub fn new(url: &str, from: &str) -> Result<Smtp> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| Error::Mail(format!("bad SMTP URL: {e}")))?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        let from = from.parse().map_err(|e| Error::Mail(format!("bad sender `{from}`: {e}")))?;
        Ok(Smtp { transport, from })
    }
}

#[async_trait]
impl Mailer for Smtp {
    async fn send(&self, email: Email) -> Result<()> {
        let message = build(&self.from, email)?;
        self.transport.send(message).await.map_err(|e| Error::Mail(e.to_string()))?;
        Ok(())
    }
}
