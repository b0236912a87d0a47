//! Members that disagree: a member with a stricter policy, or one that is
//! down, does not stop a 3-of-5 CA while k members remain willing; below
//! that, the request is refused with the disagreeing members' reason and
//! nothing is logged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inproc;

use std::time::{Duration, Instant};

use inproc::Cluster;
use stoq::crypto::{Algorithm, KeyPair};
use trustchain::client::{CaClient, Enrollment};
use trustchain::member::{MemberConfig, MemberNode};
use trustchain::policy::Policy;
use trustchain::Refusal;

const LONG: Duration = Duration::from_secs(6 * 3600);

/// Restarts `members` with a policy that grants at most one hour.
async fn make_strict(cluster: &mut Cluster, members: &[usize]) {
    for &i in members {
        cluster.members[i].take().unwrap().shutdown().await;
        let strict = MemberConfig {
            policy: Policy {
                max_lifetime_secs: 3600,
                ..cluster.policy.clone()
            },
            ..cluster.config(i)
        };
        cluster.members[i] = Some(MemberNode::start(strict).await.unwrap());
    }
}

/// Enrolls `name` at member 0 for six hours.
async fn enroll_long(cluster: &Cluster, name: &str) -> trustchain::Result<trustchain::messages::Issued> {
    let token = cluster.token(&[name]).await;
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let client = CaClient::unenrolled(&key, cluster.bundle.clone()).unwrap();
    let what = Enrollment {
        names: vec![name.into()],
        lifetime: Some(LONG),
        ..Enrollment::default()
    };
    let r = client.enroll_at(0, &key, &token, &what).await;
    client.endpoint().shutdown().await;
    r
}

fn log_size(cluster: &Cluster) -> u64 {
    cluster.members[0].as_ref().unwrap().log_size()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stricter_members_are_outvoted_while_k_remain_willing() {
    let mut cluster = Cluster::start(5, 3, Policy::default()).await;

    // One strict member (4): members 0, 1, 2, 3 are willing, k = 3.
    make_strict(&mut cluster, &[4]).await;
    let issued = enroll_long(&cluster, "one-strict.mesh").await.unwrap();
    let granted = issued
        .certificate
        .not_after()
        .duration_since(issued.certificate.not_before())
        .unwrap();
    assert!(
        granted > Duration::from_secs(3600) * 5,
        "the lifetime the willing members allow is granted: {granted:?}"
    );
    assert!(issued.checkpoint.signatures.len() >= 3);
    assert!(
        issued.checkpoint.signatures.iter().all(|s| s.member != 4),
        "the strict member did not sign a head holding what it refused"
    );

    // Two strict members (3, 4): 0, 1, 2 are exactly k.
    make_strict(&mut cluster, &[3]).await;
    enroll_long(&cluster, "two-strict.mesh").await.unwrap();

    // Three strict members: only 0 and 1 are willing, fewer than k.
    make_strict(&mut cluster, &[2]).await;
    let before = log_size(&cluster);
    let err = enroll_long(&cluster, "three-strict.mesh")
        .await
        .expect_err("below k willing members the request is refused");
    assert_eq!(
        err.refusal_code(),
        Some(
            Refusal::Lifetime {
                requested_secs: 0,
                max_secs: 0
            }
            .code()
        ),
        "the refusal carries the strict members' reason: {err}"
    );
    assert!(err.to_string().contains("ca-"), "and names who refused: {err}");
    assert_eq!(log_size(&cluster), before, "nothing was logged");

    // A request every member accepts still goes through.
    let token = cluster.token(&["short.mesh"]).await;
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let client = CaClient::unenrolled(&key, cluster.bundle.clone()).unwrap();
    let what = Enrollment {
        names: vec!["short.mesh".into()],
        lifetime: Some(Duration::from_secs(600)),
        ..Enrollment::default()
    };
    client.enroll_at(0, &key, &token, &what).await.unwrap();
    client.endpoint().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_does_not_hold_up_issuance() {
    let mut cluster = Cluster::start(5, 3, Policy::default()).await;
    enroll_long(&cluster, "warm.mesh").await.unwrap();
    cluster.members[4].take().unwrap().shutdown().await;
    for name in ["a.mesh", "b.mesh", "c.mesh"] {
        let t = Instant::now();
        let issued = enroll_long(&cluster, name).await.unwrap();
        assert!(issued.checkpoint.signatures.iter().all(|s| s.member != 4));
        // Printed, not asserted (machines are noisy): with member 4 down a
        // round waits a short grace for it, not the co-sign timeout.
        println!("{name}: issued in {:?} with a member down", t.elapsed());
    }
}
