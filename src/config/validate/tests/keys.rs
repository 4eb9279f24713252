//! Unknown keys are refused with the nearest known key suggested.

use super::fails;
use crate::config::validate::routes::PREDICATES;
use crate::config::validate::suggest::{levenshtein, suggest};

#[test]
fn unknown_keys_suggest_the_nearest() {
    fails(
        "cg.sessionTimeoutSecs: 10\n",
        "cg.sessionTimeoutSecs",
        "did you mean `cg.sessionTimeoutSec`?",
    );
    fails(
        "cg.session-timeout-sec: 10\n",
        "cg.session-timeout-sec",
        "did you mean `cg.sessionTimeoutSec`?",
    );
    fails(
        "sessiongate.max_head_bytes: 10\n",
        "sessiongate.max_head_bytes",
        "did you mean `sessiongate.max-head-bytes`?",
    );
    fails(
        "server.prot: 1\n",
        "server.prot",
        "did you mean `server.port`?",
    );
    fails(
        "management.server.adress: 1\n",
        "management.server.adress",
        "did you mean `management.server.address`?",
    );
    fails(
        "spring.cloud.gateway.route: []\n",
        "spring.cloud.gateway.route",
        "did you mean `spring.cloud.gateway.routes`?",
    );
    fails(
        "cg.completelyDifferent: 1\n",
        "cg.completelyDifferent",
        "known keys here: censhareLogoutUrl",
    );
}

#[test]
fn levenshtein_distances() {
    assert_eq!(levenshtein("", "abc"), 3);
    assert_eq!(levenshtein("kitten", "sitting"), 3);
    assert_eq!(levenshtein("same", "same"), 0);
    assert_eq!(suggest("Paht", PREDICATES.known), Some("Path"));
    assert_eq!(suggest("Xyz", PREDICATES.known), None);
}
