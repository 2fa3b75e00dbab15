//! Bad input to the console: malformed URLs, servers that are not gateways,
//! servers that never answer, huge or malformed answers. Each is a specific
//! error, and nothing is stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{input, test_vault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;

/// A loopback server that answers every connection with `respond`.
async fn serve<F, Fut>(respond: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move { respond(stream).await });
        }
    });
    format!("http://{addr}")
}

async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut buf = vec![0u8; 8192];
    let _ = stream.read(&mut buf).await;
}

fn canned(
    status: &'static str,
    content_type: &'static str,
    body: &'static str,
) -> impl Fn(tokio::net::TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ Send
+ Sync
+ 'static {
    move |mut stream| {
        Box::pin(async move {
            read_request(&mut stream).await;
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        })
    }
}

fn console(options: ClientOptions) -> (Arc<Console>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        Console::open(dir.path(), test_vault(), options).unwrap(),
        dir,
    )
}

async fn probe_code(console: &Console, url: &str) -> (String, String) {
    let report = console
        .probe(input("Probe", url, Some("tga_x_y")), None)
        .await
        .unwrap();
    assert!(!report.ok);
    let error = report.error.unwrap();
    (error.code, error.message)
}

#[tokio::test]
async fn malformed_urls_are_refused_before_anything_is_stored() {
    let (console, _dir) = console(ClientOptions::default());
    for bad in [
        "",
        "gateway.local:8080",
        "ftp://gateway.local",
        "http://",
        "https://user:pw@gw.local",
        "http://gw.local/?x=1",
        "not a url at all",
    ] {
        let err = console
            .add_instance(input("Bad", bad, Some("tga_token")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "validation", "{bad}");
        let ipc = tollgate_console::IpcError::from(err);
        assert_eq!(ipc.fields[0].field, "base_url", "{bad}");
        let err = console
            .probe(input("Bad", bad, Some("tga_token")), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "validation");
    }
    let mut many = input("  ", "http://ok.local", None);
    many.color = Some("red".into());
    many.ca_cert_pem = Some("not a certificate".into());
    let ipc = tollgate_console::IpcError::from(console.add_instance(many).await.unwrap_err());
    let fields: Vec<&str> = ipc.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, vec!["name", "color", "ca_cert_pem", "admin_token"]);
    assert!(console.list_instances().unwrap().is_empty());
}

#[tokio::test]
async fn servers_that_are_not_gateways_are_named_as_such() {
    let (console, _dir) = console(ClientOptions::default());
    let html = serve(canned(
        "200 OK",
        "text/html",
        "<html><body>Welcome to nginx!</body></html>",
    ))
    .await;
    let (code, message) = probe_code(&console, &html).await;
    assert_eq!(code, "not_a_gateway", "{message}");
    assert!(message.contains("text/html"), "{message}");

    let other_json = serve(canned("200 OK", "application/json", "{\"status\":\"ok\"}")).await;
    assert_eq!(probe_code(&console, &other_json).await.0, "not_a_gateway");

    let not_found = serve(canned("404 Not Found", "text/plain", "no")).await;
    assert_eq!(probe_code(&console, &not_found).await.0, "not_a_gateway");

    let garbage = serve(canned(
        "200 OK",
        "application/json",
        "{\"product\": \"tollgate\", \"oops",
    ))
    .await;
    assert_eq!(probe_code(&console, &garbage).await.0, "malformed_response");

    let wrong_shape = serve(canned(
        "200 OK",
        "application/json",
        "{\"product\": \"tollgate\", \"version\": 7}",
    ))
    .await;
    assert_eq!(
        probe_code(&console, &wrong_shape).await.0,
        "malformed_response"
    );

    let unauthorized = serve(canned("401 Unauthorized", "text/plain", "go away")).await;
    assert_eq!(probe_code(&console, &unauthorized).await.0, "unauthorized");
}

#[tokio::test]
async fn silence_and_floods_are_bounded() {
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(1),
        max_response_bytes: 64 * 1024,
    };
    let (console, _dir) = console(options);
    let silent = serve(|mut stream| async move {
        read_request(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    assert_eq!(probe_code(&console, &silent).await.0, "timeout");

    let declared_huge = serve(|mut stream| async move {
        read_request(&mut stream).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&[b' '; 1024]).await;
    })
    .await;
    assert_eq!(
        probe_code(&console, &declared_huge).await.0,
        "response_too_large"
    );

    let endless = serve(|mut stream| async move {
        read_request(&mut stream).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 4096, " ".repeat(4096));
        for _ in 0..1024 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert_eq!(probe_code(&console, &endless).await.0, "response_too_large");
}

#[tokio::test]
async fn network_failures_are_specific() {
    let (console, _dir) = console(ClientOptions::default());
    let free_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, message) = probe_code(&console, &format!("http://127.0.0.1:{free_port}")).await;
    assert_eq!(code, "connection_refused", "{message}");
    assert!(message.contains(&free_port.to_string()));

    let (code, message) = probe_code(&console, "http://no-such-gateway.invalid").await;
    assert_eq!(code, "dns", "{message}");
    assert!(message.contains("no-such-gateway.invalid"));

    // TLS spoken to a plain HTTP server.
    let plain = serve(canned("200 OK", "text/plain", "plain")).await;
    let (code, message) = probe_code(&console, &plain.replace("http://", "https://")).await;
    assert_eq!(code, "tls", "{message}");
}
