//! The Dockerfile reader (directives, continuations, heredoc-free instructions, JSON
//! forms) and variable substitution (`${a:-${b:+c}}` nested as deep as the input likes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = engine::build::dockerfile::parse(text);
    let lookup = |n: &str| (n.len() % 2 == 0).then(|| "v".repeat(n.len()));
    let _ = engine::build::dockerfile::substitute(text, '\\', &lookup, 1);
    let _ = engine::build::dockerfile::substitute(text, '`', &lookup, 1);
});
