//! `--to-datetime` values, as Kafka's tool reads them: `YYYY-MM-DDTHH:mm:SS[.sss]` with an
//! optional zone (`Z`, `±hh:mm`, `±hhmm` or `±hh`); without a zone the local time zone
//! applies. Fractions finer than a millisecond are cut (Kafka timestamps are milliseconds).

use chrono::{FixedOffset, Local, NaiveDateTime, TimeZone};

const FORMAT_HINT: &str =
    "expected YYYY-MM-DDTHH:mm:SS[.sss][Z|+hh:mm|-hh:mm], e.g. 2026-01-01T00:00:00.000Z";

/// Milliseconds since the Unix epoch.
pub fn parse_datetime_ms(arg: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("invalid datetime '{arg}': {why}; {FORMAT_HINT}");
    let t_at = arg
        .find('T')
        .ok_or_else(|| bad("no 'T' between date and time"))?;
    let time = &arg[t_at + 1..];
    let zone_at = time.find(['Z', 'z', '+', '-']).map(|i| t_at + 1 + i);
    let (local, zone) = match zone_at {
        Some(i) => (&arg[..i], Some(&arg[i..])),
        None => (arg, None),
    };
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|e| bad(&e.to_string()))?;
    let instant = match zone {
        None => Local
            .from_local_datetime(&naive)
            .earliest()
            .ok_or_else(|| bad("that local time does not exist (daylight saving gap)"))?
            .timestamp_millis(),
        Some(z) => {
            let offset = parse_offset(z).ok_or_else(|| bad(&format!("bad zone '{z}'")))?;
            offset
                .from_local_datetime(&naive)
                .single()
                .ok_or_else(|| bad("out of range"))?
                .timestamp_millis()
        }
    };
    Ok(instant)
}

fn parse_offset(zone: &str) -> Option<FixedOffset> {
    if zone.eq_ignore_ascii_case("z") {
        return FixedOffset::east_opt(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|&c| c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let colon_ok = match zone[1..].find(':') {
        None => true,
        Some(i) => i == 2 && zone.len() == 6,
    };
    let (h, m) = match digits.len() {
        2 if colon_ok => (digits.parse::<i32>().ok()?, 0),
        4 if colon_ok => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if h > 18 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_fractions() {
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00.123456Z"), Ok(123));
        assert_eq!(
            parse_datetime_ms("2026-01-01T00:00:00.000Z"),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            parse_datetime_ms("2026-01-01T01:00:00+01:00"),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            parse_datetime_ms("2025-12-31T19:30:00-0430"),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            parse_datetime_ms("2026-01-01T02:00:00+02"),
            Ok(1_767_225_600_000)
        );
    }

    #[test]
    fn no_zone_means_local_time() {
        let naive =
            NaiveDateTime::parse_from_str("2026-03-01T12:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        let want = Local
            .from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .timestamp_millis();
        assert_eq!(parse_datetime_ms("2026-03-01T12:00:00"), Ok(want));
    }

    #[test]
    fn bad_values_name_the_format() {
        for bad in [
            "2026-01-01",
            "2026-01-01 00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T25:00:00Z",
            "2026-01-01T00:00:00+5:00",
            "2026-01-01T00:00:00+25:00",
            "2026-01-01T00:00:00Q",
            "yesterday",
        ] {
            let err = parse_datetime_ms(bad).unwrap_err();
            assert!(err.contains("expected YYYY-MM-DDTHH:mm:SS"), "{bad}: {err}");
        }
    }
}
