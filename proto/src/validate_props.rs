//! Property tests of the wire rules: names, release paths and symlink
//! targets, and the bound on what an error message echoes.

use std::path::{Component, Path};

use proptest::prelude::*;

use super::*;

/// A path component: mostly plain names, sometimes the troublemakers.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_.-]{1,12}",
        1 => Just("..".to_owned()),
        1 => Just(".".to_owned()),
        1 => Just(String::new()),
        1 => "[^/]{1,4}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(component(), 1..6)).prop_map(|(absolute, parts)| {
        format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"))
    })
}

/// A valid release path.
fn clean_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z]{1,6}", 1..5).prop_map(|parts| parts.join("/"))
}

proptest! {
    #[test]
    fn a_name_is_accepted_exactly_when_it_has_the_shape(value in "[a-z0-9A-Z_-]{0,70}") {
        let shape = !value.is_empty()
            && value.len() <= limits::NAME
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        prop_assert_eq!(name("n", &value).is_ok(), shape);
    }

    #[test]
    fn an_accepted_release_path_stays_below_the_root(value in path()) {
        if relative_path("p", &value).is_ok() {
            let joined = Path::new("/srv/app/releases/r1").join(&value);
            prop_assert!(joined.starts_with("/srv/app/releases/r1"));
            prop_assert!(Path::new(&value).components().all(|c| matches!(c, Component::Normal(_))));
            prop_assert_eq!(Path::new(&value).components().count(), value.split('/').count());
        }
    }

    #[test]
    fn an_accepted_symlink_never_climbs_out(link in clean_path(), target in path()) {
        if symlink_target("t", &link, &target).is_ok() {
            // `../` only at the start, then names: resolving it lexically is
            // what the filesystem does, and it never goes above the root.
            let mut depth = link.split('/').count() as i64 - 1;
            let mut seen_name = false;
            for c in Path::new(&target).components() {
                match c {
                    Component::ParentDir => {
                        prop_assert!(!seen_name);
                        depth -= 1;
                    }
                    Component::Normal(_) => {
                        seen_name = true;
                        depth += 1;
                    }
                    Component::CurDir => {}
                    _ => prop_assert!(false, "absolute target accepted"),
                }
                prop_assert!(depth >= 0);
            }
        }
    }

    #[test]
    fn refusals_never_echo_more_than_a_bounded_part(value in ".{0,200}", pad in 0usize..100_000) {
        let long = format!("{value}{}", "x".repeat(pad));
        for err in [
            name("n", &long).err(),
            host_name("h", &long).err(),
            release_id("r", &long).err(),
            relative_path("p", &long).err(),
            absolute_path("a", &long).err(),
            symlink_target("s", &long, &long).err(),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert!(err.to_string().len() < 600, "{}", err.to_string().len());
        }
    }
}
