//! Topic name rules, as Kafka enforces them.

/// Kafka's limit: the name must leave room for `-<partition>` and suffixes in a file name.
pub const TOPIC_NAME_MAX_CHARS: usize = 249;

/// Why a topic name is refused, or `Ok` when it is legal.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > TOPIC_NAME_MAX_CHARS {
        return Err(format!(
            "topic name is {} characters; the limit is {TOPIC_NAME_MAX_CHARS}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{c}'; use only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Topics whose names differ only by '.' versus '_' collide in metric names; Kafka refuses them.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_and_illegal_names() {
        assert!(validate_topic_name("orders.v1_EU-west").is_ok());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"a".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }
}
