//! `.dockerignore` patterns and Go's glob matching against paths: the first line of the
//! input is a path, the rest the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, rules) = text.split_once('\n').unwrap_or((text, ""));
    let ig = engine::build::ignore::Ignore::parse(rules);
    let _ = ig.excluded(path);
    let _ = ig.may_include_under(path);
    for line in rules.lines().take(8) {
        let _ = engine::build::ignore::glob_match(line, path);
    }
    let _ = engine::build::ignore::clean(path);
});
