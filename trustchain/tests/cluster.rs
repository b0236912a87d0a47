//! TrustChain as deployed: member processes (`trustchain serve`), issuance
//! with k co-signatures, certificates a STOQ endpoint accepts, members
//! going down and coming back, and the command-line tools end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use std::path::Path;
use std::time::Duration;

use stoq::endpoint::RpcRequest;
use stoq::pki::{CertificateError, KeyPurpose};
use trustchain::client::CaClient;
use trustchain::trust::TrustStore;
use trustchain::Refusal;

use common::*;

/// What a refused request may have changed at member `i`: certificates
/// issued, log size, tokens known (created or marked used).
async fn snapshot(client: &CaClient, i: u16) -> (u64, u64, u64) {
    let s = status(client, i).await;
    (
        s["certificates_issued"].as_u64().unwrap(),
        s["log_size"].as_u64().unwrap(),
        s["tokens"].as_u64().unwrap(),
    )
}

/// The refusal code of a result that must have failed.
fn refused_with<T: std::fmt::Debug>(r: &trustchain::Result<T>) -> (Option<u16>, String) {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => (e.refusal_code(), e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_of_five_cluster_issues_a_certificate_a_stoq_endpoint_accepts() {
    init_tracing();
    let cluster = Cluster::start(5, 3).await;
    let bundle = cluster.bundle.clone();

    // Two nodes enroll, each with its own token.
    let server_key = key();
    let server_token = cluster.token(0, &["server.mesh"]).await;
    let server_client = cluster.client(&server_key);
    let server = within(
        "server enrollment",
        server_client.enroll(&server_key, &server_token, &names(&["server.mesh"])),
    )
    .await
    .expect("server enrollment");
    let client_key = key();
    let client_token = cluster.token(1, &["client.mesh"]).await;
    let client = enroll_at(&bundle, 2, &client_key, &client_token, &["client.mesh"])
        .await
        .expect("client enrollment");

    for issued in [&server, &client] {
        let cp = &issued.checkpoint;
        assert_eq!(cp.signatures.len(), 3, "k = 3 signatures: {:?}", cp.signatures);
        assert_eq!(cp.signatures[0].member, cp.body.log_id, "the log operator signs first");
        assert_eq!(cp.verify(&bundle).expect("checkpoint verifies"), 3);
    }
    assert!(server.certificate.dns_names().contains(&"server.mesh".to_string()));
    assert_eq!(server.certificate.public_key(), server_key.public_key());
    assert_eq!(client.certificate.public_key(), client_key.public_key());

    // A verifier synced from the members accepts both certificates.
    let trust = TrustStore::new(bundle.clone());
    let (cps, revs) = within("sync", server_client.sync(&trust)).await.expect("sync");
    assert!(cps >= 2, "synced {cps} checkpoints");
    assert_eq!(revs, 0);
    let v = verifier(&bundle, &trust);
    for issued in [&server, &client] {
        verify_client(&v, &issued.certificate).expect("certificate verifies");
    }
    v.verify(
        server.certificate.der(),
        &[],
        &KeyPurpose::Server("server.mesh".into()),
        std::time::SystemTime::now(),
    )
    .expect("server certificate verifies for its name");

    // A real STOQ server with the issued certificate, dialled by a client
    // presenting its own issued certificate; an RPC round-trips.
    let server_ep = trustchain_endpoint(&bundle, &trust, &server.certificate, &server_key).expect("server endpoint");
    server_ep.register("greet", |req: RpcRequest| async move {
        let mut out = format!("hello {} from server: ", req.peer.names().join(",")).into_bytes();
        out.extend_from_slice(&req.body);
        Ok(Bytes::from(out))
    });
    let client_ep = trustchain_endpoint(&bundle, &trust, &client.certificate, &client_key).expect("client endpoint");
    let conn = within(
        "dialling the server",
        client_ep.connect(server_ep.local_addr().unwrap(), "server.mesh"),
    )
    .await
    .expect("the client connects to the server");
    assert!(conn.peer().names().contains(&"server.mesh".to_string()));
    let reply = within("the RPC", conn.call("greet", Bytes::from_static(b"ping"), Some(WAIT)))
        .await
        .expect("the RPC round-trips");
    let reply = String::from_utf8(reply.to_vec()).unwrap();
    assert!(reply.contains("client.mesh"), "server saw the client's names: {reply}");
    assert!(reply.ends_with("from server: ping"), "{reply}");

    // Tampering (a): a checkpoint with one co-signature removed has fewer
    // than k valid signatures and is refused...
    let mut tampered = server.checkpoint.clone();
    let removed = tampered.signatures.pop().expect("a co-signature");
    assert_ne!(removed.member, tampered.body.log_id, "removed a co-signer's signature");
    let fresh = TrustStore::new(bundle.clone());
    let err = fresh
        .add_checkpoint(tampered.clone())
        .expect_err("a checkpoint below k is refused");
    assert!(
        err.to_string().contains("valid member signatures"),
        "the refusal says why: {err}"
    );
    // ... so a verifier that holds only that checkpoint rejects the
    // certificate.
    assert_eq!(fresh.counts().0, 0, "nothing was kept");
    let err = verify_client(&verifier(&bundle, &fresh), &server.certificate).expect_err("rejected");
    assert!(
        matches!(err, CertificateError::Rejected { .. }),
        "rejected by the TrustChain check: {err}"
    );
    // The same with the operator's signature removed instead, or a
    // co-signature repeated to make up the count.
    let mut no_operator = server.checkpoint.clone();
    no_operator.signatures.remove(0);
    let err = fresh
        .add_checkpoint(no_operator)
        .expect_err("a checkpoint without its operator is refused");
    assert!(err.to_string().contains("log operator"), "{err}");
    let mut repeated = tampered.clone();
    repeated.signatures.push(repeated.signatures[1].clone());
    let err = fresh
        .add_checkpoint(repeated)
        .expect_err("a repeated co-signature is refused");
    assert!(err.to_string().contains("twice"), "{err}");
    // A forged co-signature (the right member, a signature over something
    // else) does not count either.
    let mut forged = tampered.clone();
    let mut other_body = forged.body.clone();
    other_body.timestamp_ms += 1;
    let other_key = stoq::crypto::read_key_file(&cluster.member_dir(usize::from(removed.member)).join("member.key"))
        .expect("member key");
    forged
        .signatures
        .push(other_body.sign(removed.member, &other_key).unwrap());
    let err = fresh
        .add_checkpoint(forged)
        .expect_err("a signature over another body does not count");
    assert!(err.to_string().contains("valid member signatures"), "{err}");
    assert_eq!(fresh.counts().0, 0);

    // Tampering (b): the same key certified by the member of another CA
    // (a second ceremony, its member running in this process) is rejected
    // by verifiers of this CA, and by the STOQ server.
    let other = InProcessCa::start(1, 1).await;
    let other_token = token(&other.admin(), 0, &["server.mesh"]).await;
    let foreign = enroll_at(&other.bundle, 0, &server_key, &other_token, &["server.mesh"])
        .await
        .expect("enrollment at the other CA");
    let other_trust = TrustStore::new(other.bundle.clone());
    other_trust.add_checkpoint(foreign.checkpoint.clone()).unwrap();
    verify_client(&verifier(&other.bundle, &other_trust), &foreign.certificate)
        .expect("the other CA's own verifiers accept it");
    let err = verify_client(&v, &foreign.certificate).expect_err("a certificate of another CA is rejected");
    assert!(
        !matches!(err, CertificateError::Rejected { .. }),
        "rejected by the chain check, before TrustChain's own: {err}"
    );
    assert!(
        trust.verify_certificate(&foreign.certificate).is_err(),
        "the TrustChain check alone rejects it too"
    );
    // Its checkpoint does not enter this CA's trust store either.
    let err = trust
        .add_checkpoint(foreign.checkpoint.clone())
        .expect_err("another CA's checkpoint is refused");
    assert!(err.to_string().contains("another trust bundle"), "{err}");
    let intruder = trustchain_endpoint(&other.bundle, &other_trust, &foreign.certificate, &server_key).unwrap();
    let dialled = within(
        "a handshake with a foreign certificate",
        intruder.connect(server_ep.local_addr().unwrap(), "server.mesh"),
    )
    .await;
    match dialled {
        Err(e) => eprintln!("foreign certificate: handshake refused: {e}"),
        Ok(c) => {
            // A client certificate refused after the client's side of the
            // handshake shows up as the connection failing at first use.
            let r = within(
                "a call on a refused connection",
                c.call("greet", Bytes::new(), Some(WAIT)),
            )
            .await;
            assert!(r.is_err(), "the server must not serve a foreign certificate: {r:?}");
            eprintln!("foreign certificate: connection refused at first use: {r:?}");
        }
    }
    other.shutdown().await;
    client_ep.shutdown().await;
    server_ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_survives_a_member_down_and_fails_clearly_below_k() {
    init_tracing();
    let mut cluster = Cluster::start(5, 3).await;
    let bundle = cluster.bundle.clone();
    let admin = cluster.admin();
    let first = token(&admin, 0, &["a.mesh"]).await;
    let second = token(&admin, 0, &["b.mesh"]).await;

    // Two members down: three remain, enough for k = 3.
    cluster.kill(3).await;
    cluster.kill(4).await;
    let a = key();
    let issued = enroll_at(&bundle, 0, &a, &first, &["a.mesh"])
        .await
        .expect("issuance with 3 of 5 members up");
    let signers: Vec<u16> = issued.checkpoint.signatures.iter().map(|s| s.member).collect();
    assert_eq!(signers.len(), 3);
    assert!(signers.iter().all(|m| *m < 3), "only live members signed: {signers:?}");
    let trust = TrustStore::new(bundle.clone());
    within("sync from member 0", admin.sync_from(0, &trust)).await.unwrap();
    verify_client(&verifier(&bundle, &trust), &issued.certificate).expect("the certificate verifies");

    // A third member down: fewer than k, refused with a clear reason.
    cluster.kill(2).await;
    let before = [snapshot(&admin, 0).await, snapshot(&admin, 1).await];
    let b = key();
    let r = enroll_at(&bundle, 0, &b, &second, &["b.mesh"]).await;
    let (code, message) = refused_with(&r);
    let expected = [
        Refusal::Quorum(String::new()).code(),
        Refusal::Unavailable(String::new()).code(),
    ];
    assert!(
        code.is_some_and(|c| expected.contains(&c)),
        "refused as quorum or unavailable, got {code:?}: {message}"
    );
    eprintln!("below k: {message}");
    for down in ["ca-2", "ca-3", "ca-4"] {
        assert!(message.contains(down), "the message names {down}: {message}");
    }
    assert_eq!(
        [snapshot(&admin, 0).await, snapshot(&admin, 1).await],
        before,
        "nothing was issued, logged or marked used at the live members"
    );

    // Members back: the same token still works. The node uses the client's
    // failover over all members: members 0 and 1, which stayed up, may not
    // reach the restarted ones for a while (see
    // `a_member_that_crashed_cosigns_again_once_restarted`).
    cluster.restart(2).await;
    cluster.restart(3).await;
    cluster.restart(4).await;
    let issued = within(
        "enrollment after the restart",
        cluster.client(&b).enroll(&b, &second, &names(&["b.mesh"])),
    )
    .await
    .expect("the unspent token works once the members are back");
    eprintln!("issued after the restart by member {}", issued.checkpoint.body.log_id);
    assert!(issued.certificate.dns_names().contains(&"b.mesh".to_string()));
    let trust = TrustStore::new(bundle.clone());
    within("sync", admin.sync(&trust)).await.unwrap();
    verify_client(&verifier(&bundle, &trust), &issued.certificate).expect("the certificate verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_token_stays_used_after_restart() {
    init_tracing();
    let mut cluster = Cluster::start(3, 2).await;
    let bundle = cluster.bundle.clone();
    let t = cluster.token(0, &["db-1.mesh"]).await;
    let node = key();
    let issued = enroll_at(&bundle, 0, &node, &t, &["db-1.mesh"])
        .await
        .expect("enrollment");
    let cosigner = issued
        .checkpoint
        .signatures
        .iter()
        .map(|s| s.member)
        .find(|m| *m != 0)
        .expect("a co-signer");

    // Every member stops cleanly and starts again from its data dir.
    for m in &mut cluster.members {
        let status = m.terminate().await;
        assert!(status.success(), "member {} exited with {status}", m.index);
    }
    for i in 0..3 {
        cluster.restart(i).await;
    }

    // The token is spent at the member that issued and at a co-signer.
    for at in [0, cosigner] {
        let r = enroll_at(&bundle, at, &node, &t, &["db-1.mesh"]).await;
        let (code, message) = refused_with(&r);
        assert_eq!(
            code,
            Some(Refusal::TokenUsed.code()),
            "member {at} refuses the spent token as used: {message}"
        );
    }
    // Also with another key.
    let r = enroll_at(&bundle, cosigner, &key(), &t, &["db-1.mesh"]).await;
    assert_eq!(refused_with(&r).0, Some(Refusal::TokenUsed.code()));
    let admin = cluster.admin();
    assert_eq!(issued_and_size(&admin, 0).await, (1, 1), "one certificate only");
}

/// A member that was down while a token was spent learns it is spent from
/// the others when asked to spend it again; the client must still be told
/// "token used" (103), not a quorum failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_token_is_refused_as_used_by_a_member_that_missed_the_issuance() {
    init_tracing();
    let mut cluster = Cluster::start(3, 2).await;
    let bundle = cluster.bundle.clone();
    let t = cluster.token(0, &["db-2.mesh"]).await;
    cluster.kill(2).await;
    let node = key();
    let issued = enroll_at(&bundle, 0, &node, &t, &["db-2.mesh"])
        .await
        .expect("enrollment with 2 of 3 up");
    assert!(issued.checkpoint.signatures.iter().all(|s| s.member != 2));
    cluster.restart(2).await;

    let admin = cluster.admin();
    let before = issued_and_size(&admin, 2).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let (code, message) = loop {
        let r = enroll_at(&bundle, 2, &node, &t, &["db-2.mesh"]).await;
        let (code, message) = refused_with(&r);
        // Right after the restart the other members may still hold a stale
        // connection to member 2; what matters is the answer once they
        // reach it.
        if message.contains("already used") || tokio::time::Instant::now() >= deadline {
            break (code, message);
        }
        eprintln!("retrying: {message}");
    };
    assert!(
        message.contains("already used"),
        "the spent token is refused: {message}"
    );
    assert_eq!(issued_and_size(&admin, 2).await, before, "nothing stored at member 2");
    assert_eq!(
        code,
        Some(Refusal::TokenUsed.code()),
        "member 2 must refuse with the token-used code: {message}"
    );
}

/// Runs the CLI with `args`; returns (success, stdout, stderr).
async fn cli(args: &[&str]) -> (bool, String, String) {
    let out = within(
        &format!("trustchain {}", args.join(" ")),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_trustchain"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("running the CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like [`cli`], asserting success; returns stdout.
async fn cli_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = cli(args).await;
    assert!(
        ok,
        "trustchain {} failed\nstdout: {stdout}\nstderr: {stderr}",
        args.join(" ")
    );
    stdout
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_end_to_end() {
    init_tracing();
    let dir = temp_dir();
    // init and serve x3, on other ports if one was taken meanwhile.
    let mut started = None;
    let mut last = String::new();
    for attempt in 0..5 {
        let out = dir.path().join(format!("ca-{attempt}"));
        let base = free_base_port(3).to_string();
        // HTTP on free ports: `--http-base-port 0` does not disable it (see
        // `ceremony_without_http_writes_configs_without_http`).
        let http_base = free_port_range(3, true).to_string();
        let stdout = cli_ok(&[
            "init",
            "--members",
            "3",
            "--threshold",
            "2",
            "--base-port",
            &base,
            "--http-base-port",
            &http_base,
            "--dns-base-port",
            "0",
            "--out",
            s(&out),
        ])
        .await;
        assert!(stdout.contains("bundle id"), "{stdout}");
        for f in ["bundle.toml", "admin.key", "root.key"] {
            assert!(out.join(f).exists(), "init wrote {f}");
        }
        let starts = (0..3u16).map(|i| {
            let config = out.join(format!("member-{i}")).join("trustchain.toml");
            async move { MemberProcess::spawn(i, &config).await }
        });
        let results = futures_util::future::join_all(starts).await;
        if results.iter().all(Result::is_ok) {
            started = Some((out, results.into_iter().map(Result::unwrap).collect::<Vec<_>>()));
            break;
        }
        last = results
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>()
            .join("\n---\n");
        if !last.contains("in use") {
            break;
        }
    }
    let Some((out, _members)) = started else {
        panic!("starting the members failed:\n{last}");
    };
    let bundle = out.join("bundle.toml");
    let admin_key = out.join("admin.key");
    let node_key = dir.path().join("node.key");
    let cert = dir.path().join("node.crt");
    let token_file = dir.path().join("token.txt");

    let token = cli_ok(&[
        "token",
        "create",
        "--bundle",
        s(&bundle),
        "--admin-key",
        s(&admin_key),
        "--names",
        "db-1.mesh",
    ])
    .await;
    assert!(token.trim().starts_with("tct1."), "{token}");
    std::fs::write(&token_file, &token).unwrap();

    let issued = cli_ok(&[
        "issue",
        "--bundle",
        s(&bundle),
        "--token",
        &format!("@{}", s(&token_file)),
        "--key",
        s(&node_key),
        "--out",
        s(&cert),
        "--names",
        "db-1.mesh",
    ])
    .await;
    assert!(issued.contains("db-1.mesh"), "{issued}");
    assert!(cert.exists() && node_key.exists());
    // "(log N, size M)"
    let log_id = issued
        .split("(log ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("the issuing log in the output")
        .to_string();

    let verified = cli_ok(&["verify", "--bundle", s(&bundle), "--cert", s(&cert)]).await;
    assert!(verified.contains("valid"), "{verified}");

    let status = cli_ok(&["status", "--bundle", s(&bundle)]).await;
    let lines: Vec<serde_json::Value> = status
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("status line {l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3, "{status}");
    let total: u64 = lines
        .iter()
        .map(|l| {
            assert!(l.get("error").is_none(), "member unreachable: {l}");
            l["certificates_issued"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(total, 1, "{status}");

    let head = cli_ok(&["log", "head", "--bundle", s(&bundle)]).await;
    assert!(head.contains(&format!("log {log_id}: size 1")), "{head}");

    let checked = cli_ok(&["log", "verify", "--bundle", s(&bundle), "--member", &log_id]).await;
    assert!(checked.contains("1 entries included"), "{checked}");

    let revoked = cli_ok(&[
        "revoke",
        "--bundle",
        s(&bundle),
        "--cert",
        s(&cert),
        "--admin-key",
        s(&admin_key),
    ])
    .await;
    assert!(revoked.contains("revoked serial"), "{revoked}");

    let (ok, stdout, stderr) = cli(&["verify", "--bundle", s(&bundle), "--cert", s(&cert)]).await;
    assert!(
        !ok,
        "verify must fail for a revoked certificate\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stdout.contains("valid"), "{stdout}");
    assert!(stderr.contains("revoked"), "the failure says revoked: {stderr}");

    // The token was single-use.
    let (ok, _, stderr) = cli(&[
        "issue",
        "--bundle",
        s(&bundle),
        "--token",
        &format!("@{}", s(&token_file)),
        "--key",
        s(&dir.path().join("other.key")),
        "--out",
        s(&dir.path().join("other.crt")),
        "--names",
        "db-1.mesh",
    ])
    .await;
    assert!(!ok, "a spent token is refused");
    assert!(stderr.contains("already used"), "{stderr}");
}

/// `CeremonyOptions::http_base_port: 0` (`trustchain init --http-base-port
/// 0`) means "no HTTP"; the member configs written must say so.
#[test]
fn ceremony_without_http_writes_configs_without_http() {
    let dir = tempfile::tempdir().unwrap();
    let opts = trustchain::ceremony::CeremonyOptions {
        members: 3,
        threshold: 2,
        base_port: free_base_port(3),
        http_base_port: 0,
        dns_base_port: 0,
        out_dir: dir.path().join("ca"),
        ..Default::default()
    };
    let out = trustchain::ceremony::run(&opts, |_| {}).expect("ceremony");
    for d in &out.member_dirs {
        let text = std::fs::read_to_string(d.join("trustchain.toml")).unwrap();
        let config = trustchain::member::MemberConfig::from_toml(&text).expect("config parses");
        assert_eq!(
            config.http_listen,
            None,
            "{}: the ceremony asked for no HTTP, the member would serve it on {:?}",
            d.display(),
            config.http_listen
        );
    }
}

/// A member that crashed (SIGKILL: its peers are not told) and restarted
/// co-signs again as soon as it is back: the other members must not keep
/// using their connections to the dead process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_crashed_cosigns_again_once_restarted() {
    init_tracing();
    let mut cluster = Cluster::start(3, 2).await;
    let bundle = cluster.bundle.clone();
    let admin = cluster.admin();
    let first = token(&admin, 0, &["a.mesh"]).await;
    let second = token(&admin, 0, &["b.mesh"]).await;
    // Member 0 talks to both others (co-signing), so it holds connections.
    enroll_at(&bundle, 0, &key(), &first, &["a.mesh"])
        .await
        .expect("first enrollment");
    cluster.kill(1).await;
    cluster.kill(2).await;
    cluster.restart(1).await;
    cluster.restart(2).await;
    // A few seconds are fine (a retry on a fresh connection); the QUIC idle
    // timeout (30 s) that eventually drops the dead connections is not.
    let node = key();
    let started = tokio::time::Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match enroll_at(&bundle, 0, &node, &second, &["b.mesh"]).await {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                eprintln!("attempt {attempts}: {e}");
            }
            Err(e) => panic!(
                "member 0 still cannot get a co-signature {:?} ({attempts} attempts) after both others \
                 restarted: {e}",
                started.elapsed()
            ),
        }
    }
}
