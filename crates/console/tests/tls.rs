//! TLS in front of a real `tollgated`: a CA made for this test signs a
//! certificate for `localhost`, and a TLS terminator forwards to the gateway.
//! Verification is on by default; a custom CA makes it pass; turning
//! verification off is possible but explicit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Gateway, input, test_vault};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;

/// Returns the CA's PEM and a TLS acceptor for `localhost` signed by it.
fn test_pki() -> (String, TlsAcceptor) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tollgate test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

/// Terminates TLS on a loopback port and forwards to `upstream` (host:port).
async fn tls_front(acceptor: TlsAcceptor, upstream: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_is_verified_by_default_and_a_custom_ca_makes_it_pass() {
    let gw = Gateway::start("tls-gw");
    let (ca_pem, acceptor) = test_pki();
    let port = tls_front(acceptor, gw.base.trim_start_matches("http://").to_owned()).await;
    let url = format!("https://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();
    let vault = test_vault();
    let console = Console::open(dir.path(), vault.clone(), ClientOptions::default()).unwrap();

    let report = console
        .probe(input("TLS", &url, Some(&gw.token)), None)
        .await
        .unwrap();
    let error = report.error.expect("an unknown CA must fail");
    assert_eq!(error.code, "tls", "{}", error.message);
    assert!(
        error.message.to_lowercase().contains("issuer") || error.message.contains("certificate"),
        "{}",
        error.message
    );

    let mut with_ca = input("TLS", &url, Some(&gw.token));
    with_ca.ca_cert_pem = Some(ca_pem.clone());
    let report = console.probe(with_ca.clone(), None).await.unwrap();
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.instance_name.as_deref(), Some("tls-gw"));

    let mut unverified = input("TLS", &url, Some(&gw.token));
    unverified.tls_verify = false;
    assert!(console.probe(unverified, None).await.unwrap().ok);

    // Saved with its CA, the instance keeps working through the fleet check.
    let instance = console.add_instance(with_ca).await.unwrap();
    assert_eq!(instance.ca_cert_pem.as_deref(), Some(ca_pem.trim()));
    assert!(console.test_connection(&instance.id).await.unwrap().ok);
    console.remove_instance(&instance.id).await.unwrap();
}
