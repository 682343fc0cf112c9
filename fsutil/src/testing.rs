//! For the test suites: a test whose peer tool or kernel feature is missing here either
//! skips (printing why) or, under `STRATA_TEST_REQUIRE=all` (which CI sets), fails with
//! the same reason, so a suite can never pass by comparing nothing.

/// Whether every peer and kernel feature is required (`STRATA_TEST_REQUIRE=all`).
pub fn all_required() -> bool {
    std::env::var("STRATA_TEST_REQUIRE").is_ok_and(|v| v == "all")
}

/// Reports that a test cannot run here because of `why`: prints `SKIPPED: why`, or
/// panics with it when everything is required.
pub fn skip(why: &str) {
    if all_required() {
        panic!("STRATA_TEST_REQUIRE=all, and {why}");
    }
    eprintln!("SKIPPED: {why}");
}
