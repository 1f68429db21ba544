use super::*;
use proptest::prelude::*;

fn ok(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn err(s: &str) -> AddressError {
    match EmailAddress::parse(s) {
        Ok(a) => panic!("{s:?} should be rejected, parsed as {a}"),
        Err(e) => e,
    }
}

#[test]
fn plain_dot_atom_keeps_local_case_and_lowercases_domain() {
    let a = ok("Sales.Team@ACME.Test");
    assert_eq!(a.to_string(), "Sales.Team@acme.test");
    assert_eq!(a.local_part(), "Sales.Team");
    assert_eq!(a.domain().as_str(), "acme.test");
    assert_eq!(a.match_key(), "sales.team@acme.test");
}

#[test]
fn quoted_local_parts() {
    assert_eq!(ok("\"john doe\"@x.test").to_string(), "\"john doe\"@x.test");
    assert_eq!(ok("\"a\\\"b\"@x.test").to_string(), "\"a\\\"b\"@x.test");
    assert_eq!(ok("\"a@b\"@x.test").local_part(), "\"a@b\"");
    // A quoted dot-atom is the same mailbox as the unquoted one.
    assert_eq!(ok("\"plain\"@x.test"), ok("plain@x.test"));
    assert_eq!(
        err("\"open@x.test"),
        AddressError::BadQuoting("it does not end with a closing quote")
    );
    assert_eq!(
        err("\"a\"b\"@x.test"),
        AddressError::BadQuoting("an unescaped quote appears inside it")
    );
}

#[test]
fn utf8_local_parts_and_idn_domains() {
    let a = ok("José@Bücher.example");
    assert_eq!(a.local_part(), "José");
    assert_eq!(a.domain().as_str(), "xn--bcher-kva.example");
    assert_eq!(
        ok("用户@例子.测试").domain().as_str(),
        "xn--fsqu00a.xn--0zwm56d"
    );
}

#[test]
fn rejections_say_what_is_wrong() {
    assert_eq!(err(""), AddressError::Empty);
    assert_eq!(err("no-at-sign"), AddressError::MissingAt);
    assert_eq!(err("@x.test"), AddressError::EmptyLocalPart);
    assert_eq!(err("a@"), AddressError::EmptyDomain);
    assert_eq!(err("a b@x.test"), AddressError::InvalidLocalChar(' '));
    assert_eq!(err("a..b@x.test"), AddressError::BadDot);
    assert_eq!(err(".a@x.test"), AddressError::BadDot);
    assert_eq!(err("a.@x.test"), AddressError::BadDot);
    assert!(matches!(
        err("a@x..test"),
        AddressError::InvalidDomain(_, _)
    ));
    assert!(matches!(
        err("a@-x.test"),
        AddressError::InvalidDomain(_, _)
    ));
    assert!(matches!(
        err("a@x_y.test"),
        AddressError::InvalidDomain(_, _)
    ));
    assert!(err("a@x_y.test").to_string().contains("x_y.test"));
}

#[test]
fn control_characters_are_rejected_with_their_position() {
    assert_eq!(
        err("a\r\nb@x.test"),
        AddressError::ControlCharacter(0x0d, 1)
    );
    assert_eq!(err("a@x.test\n"), AddressError::ControlCharacter(0x0a, 8));
    assert_eq!(err("a\0@x.test"), AddressError::ControlCharacter(0, 1));
    assert_eq!(err("\"a\tb\"@x.test"), AddressError::ControlCharacter(9, 2));
    assert_eq!(
        err("a\u{7f}@x.test"),
        AddressError::ControlCharacter(0x7f, 1)
    );
}

#[test]
fn length_limits() {
    let local64 = "a".repeat(64);
    ok(&format!("{local64}@x.test"));
    assert_eq!(
        err(&format!("{}@x.test", "a".repeat(65))),
        AddressError::LocalPartTooLong(65)
    );
    let label = "b".repeat(63);
    let long_domain = format!("{label}.{label}.{label}.{}", "c".repeat(61)); // 253 octets
    assert!(matches!(
        err(&format!("a@{long_domain}")),
        AddressError::TooLong(255)
    ));
    let too_long_domain = format!("{label}.{label}.{label}.{label}.{label}");
    assert!(matches!(
        err(&format!("a@{too_long_domain}")),
        AddressError::DomainTooLong(_)
    ));
    assert!(matches!(
        err(&format!("a@{}.test", "d".repeat(64))),
        AddressError::InvalidDomain(_, _)
    ));
}

#[test]
fn address_literals() {
    assert_eq!(ok("a@[192.0.2.1]").domain().as_str(), "[192.0.2.1]");
    assert_eq!(
        ok("a@[ipv6:2001:DB8::1]").domain().as_str(),
        "[IPv6:2001:db8::1]"
    );
    assert!(matches!(
        err("a@[300.1.1.1]"),
        AddressError::InvalidAddressLiteral(_)
    ));
}

#[test]
fn subaddress_is_stripped_for_lookup() {
    assert_eq!(
        ok("user+tag@x.test").without_subaddress(),
        Some(ok("user@x.test"))
    );
    assert_eq!(
        ok("user+a+b@x.test").without_subaddress(),
        Some(ok("user@x.test"))
    );
    assert_eq!(ok("user@x.test").without_subaddress(), None);
    assert_eq!(ok("+tag@x.test").without_subaddress(), None);
}

#[test]
fn try_from_string_uses_the_same_constructor() {
    assert_eq!(
        EmailAddress::try_from("A@X.TEST".to_owned()).map(|a| a.to_string()),
        Ok("A@x.test".to_owned())
    );
    assert_eq!(
        EmailAddress::try_from("nope".to_owned()),
        Err(AddressError::MissingAt)
    );
}

proptest! {
    #[test]
    fn valid_dot_atoms_round_trip(
        local in "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-zA-Z0-9_-]{1,10}){0,3}",
        domain in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z]{2,10}){1,3}",
    ) {
        let input = format!("{local}@{domain}");
        let a = EmailAddress::parse(&input).unwrap();
        prop_assert_eq!(a.to_string(), input.clone());
        prop_assert_eq!(EmailAddress::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn parse_never_panics_and_output_reparses(input in "\\PC{0,80}") {
        if let Ok(a) = EmailAddress::parse(&input) {
            let shown = a.to_string();
            prop_assert!(shown.len() <= MAX_ADDRESS);
            prop_assert!(!shown.chars().any(char::is_control));
            prop_assert_eq!(EmailAddress::parse(&shown).unwrap(), a);
        }
    }

    #[test]
    fn any_control_character_is_rejected(prefix in "[a-z]{1,5}", c in proptest::char::range('\0', '\u{1f}'), suffix in "[a-z]{0,5}") {
        let input = format!("{prefix}{c}{suffix}@x.test");
        let rejected = matches!(EmailAddress::parse(&input), Err(AddressError::ControlCharacter(_, _)));
        prop_assert!(rejected);
    }

    #[test]
    fn quoted_local_parts_round_trip(content in "[ -!#-\\[\\]-~]{1,30}") {
        let input = format!("\"{content}\"@x.test");
        let a = EmailAddress::parse(&input).unwrap();
        prop_assert_eq!(EmailAddress::parse(&a.to_string()).unwrap(), a);
    }
}
