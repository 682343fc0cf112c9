//! Dockerfile builds (issue 17, in progress): so far the Dockerfile reader, with the
//! classic builder's syntax and variable substitution.

pub mod dockerfile;
