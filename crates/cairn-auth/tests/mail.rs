//! Mail leaves by SMTP (a real SMTP conversation with a local server) or
//! lands in the outbox folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_auth::mail::{Email, Mailer, Outbox, Smtp};
use cairn_testkit::{SmtpSink, TempDir};

fn email() -> Email {
    Email {
        to: "ada@example.com".into(),
        subject: "Reset your Cairn password".into(),
        body: "Open this link.\n".into(),
    }
}

#[tokio::test]
async fn smtp_delivers_to_the_server() {
    let sink = SmtpSink::start().await;
    let smtp = Smtp::new(&format!("smtp://{}", sink.addr), "Cairn <cairn@example.com>").unwrap();
    smtp.send(email()).await.unwrap();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    for expected in [
        "To: ada@example.com",
        "From: Cairn <cairn@example.com>",
        "Subject: Reset your Cairn password",
        "Open this link.",
    ] {
        assert!(message.contains(expected), "{expected} missing from:\n{message}");
    }
}

#[tokio::test]
async fn smtp_failures_are_reported() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let smtp = Smtp::new(&format!("smtp://{closed}"), "Cairn <cairn@example.com>").unwrap();
    let error = smtp.send(email()).await.unwrap_err();
    assert!(matches!(error, cairn_auth::Error::Mail(_)), "{error}");
    assert!(Smtp::new("not a url", "Cairn <cairn@example.com>").is_err());
    assert!(Smtp::new(&format!("smtp://{closed}"), "not a sender").is_err());
}

#[tokio::test]
async fn the_outbox_keeps_each_message_as_an_eml_file() {
    let dir = TempDir::new("outbox");
    let outbox = Outbox::new(dir.path.join("outbox"), "Cairn <cairn@localhost>").unwrap();
    outbox.send(email()).await.unwrap();
    outbox.send(email()).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path.join("outbox")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.extension().is_some_and(|e| e == "eml")));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Subject: Reset your Cairn password") && text.contains("Open this link."), "{text}");
    let refused = outbox.send(Email { to: "not an address".into(), ..email() }).await;
    assert!(refused.is_err());
}
