//! `[mail]`: how messages (recovery links, invitations) are sent.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, SecretUrl};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `smtps://user:pass@host:465` or `smtp://host:587` (STARTTLS); empty
    /// writes each message as an .eml file into `outbox` in the data dir.
    pub smtp_url: SecretUrl,
    /// The sender of every message.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig { smtp_url: SecretUrl::default(), from: "Cairn <cairn@localhost>".to_owned() }
    }
}

impl MailConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let smtp = self.smtp_url.expose();
        if !(smtp.is_empty() || smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) {
            return Err(Error::Invalid {
                key: "mail.smtp_url",
                expected: "empty (write messages to the outbox folder) or an smtp:// or smtps:// URL",
                got: self.smtp_url.redacted(),
            });
        }
        Ok(())
    }
}
