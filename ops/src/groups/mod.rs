//! `groups list|describe|delete|reset-offsets`, after Kafka's `kafka-consumer-groups.sh`.
//!
//! Parts, one job each:
//! - `mod.rs`: the subcommands' arguments, `list`, `delete`, and the table printer.
//! - [`client`]: a small Kafka client on `kafka-protocol` for the group admin requests.
//! - [`describe`]: `describe` (state, members and assignments, offsets and lag).
//! - [`reset`]: `reset-offsets` (plan, dry run, execute).
//! - [`datetime`]: `--to-datetime` parsing.

pub mod client;
pub mod datetime;
pub mod describe;
pub mod reset;

use anyhow::bail;
use clap::{Args, Subcommand};
use kafka_protocol::error::ResponseError;
use serde::Serialize;

use self::client::Cluster;
use crate::client::ClientOpts;

#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// List consumer groups with their state and type.
    #[command(after_help = "Examples:
  isthmusctl groups list
  isthmusctl groups list --state Stable,Empty --json")]
    List(ListArgs),
    /// Show a group's members, assignments, committed offsets and lag.
    #[command(after_help = "Examples:
  isthmusctl groups describe --group billing              # offsets and lag per partition
  isthmusctl groups describe --group billing --members    # members and their partitions
  isthmusctl groups describe --group billing --state      # coordinator, assignor, state
  isthmusctl groups describe --group billing --json       # all of it, for scripts")]
    Describe(describe::DescribeArgs),
    /// Delete groups that have no active members (their committed offsets go too).
    #[command(after_help = "Examples:
  isthmusctl groups delete --group billing --group old-reports")]
    Delete(DeleteArgs),
    /// Move a group's committed offsets (dry run unless --execute).
    #[command(after_help = "Examples:
  isthmusctl groups reset-offsets --group billing --topic orders --to-earliest
  isthmusctl groups reset-offsets --group billing --topic orders:0,1 --shift-by -100 --execute
  isthmusctl groups reset-offsets --group billing --all-topics --to-datetime 2026-01-01T00:00:00Z --execute

The group must have no active members (state Empty), as with Kafka's tool. Targets
outside a partition's [log start, log end] are clamped into it, with a warning.")]
    ResetOffsets(reset::ResetArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only groups in these states (comma-separated, any case): Empty, Stable,
    /// PreparingRebalance, CompletingRebalance, Dead, Assigning, Reconciling.
    #[arg(long, value_delimiter = ',', value_parser = parse_state, value_name = "STATE[,STATE..]")]
    pub state: Vec<String>,
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Group to delete (repeatable).
    #[arg(long, required = true)]
    pub group: Vec<String>,
}

/// Group states Kafka knows (classic and KIP-848), in their canonical spelling.
const GROUP_STATES: &[&str] = &[
    "Empty",
    "Stable",
    "PreparingRebalance",
    "CompletingRebalance",
    "Dead",
    "Assigning",
    "Reconciling",
];

fn parse_state(arg: &str) -> Result<String, String> {
    GROUP_STATES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(arg.trim()))
        .map(|s| (*s).to_owned())
        .ok_or_else(|| {
            format!(
                "unknown group state '{arg}' (one of: {})",
                GROUP_STATES.join(", ")
            )
        })
}

pub async fn run(opts: ClientOpts, cmd: GroupsCmd) -> anyhow::Result<()> {
    match cmd {
        GroupsCmd::List(a) => list(opts, a).await,
        GroupsCmd::Describe(a) => describe::run(opts, a).await,
        GroupsCmd::Delete(a) => delete(opts, a).await,
        GroupsCmd::ResetOffsets(a) => reset::run(opts, a).await,
    }
}

#[derive(Debug, Serialize)]
struct ListedJson {
    group: String,
    state: String,
    group_type: String,
    protocol_type: String,
}

async fn list(opts: ClientOpts, a: ListArgs) -> anyhow::Result<()> {
    let mut cluster = Cluster::connect(&opts).await?;
    let groups = cluster.list_groups(&a.state).await?;
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let listed: Vec<ListedJson> = groups
        .iter()
        .map(|g| ListedJson {
            group: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            group_type: g.group_type.to_string(),
            protocol_type: g.protocol_type.to_string(),
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string(&listed)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                or_dash(&g.state),
                or_dash(&g.group_type),
                or_dash(&g.protocol_type),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["GROUP", "STATE", "TYPE", "PROTOCOL-TYPE"], &rows)
    );
    Ok(())
}

async fn delete(opts: ClientOpts, a: DeleteArgs) -> anyhow::Result<()> {
    let mut cluster = Cluster::connect(&opts).await?;
    let mut failed = Vec::new();
    let mut deleted = Vec::new();
    for group in &a.group {
        match cluster.delete_group(group).await? {
            None => deleted.push(format!("'{group}'")),
            Some(code) => {
                let why = match code.error() {
                    Some(ResponseError::NonEmptyGroup) => {
                        " (the group has active members: stop its consumers first)"
                    }
                    Some(ResponseError::GroupIdNotFound) => " (the group does not exist)",
                    _ => "",
                };
                eprintln!("Group '{group}' could not be deleted: {code}{why}");
                failed.push(group.clone());
            }
        }
    }
    if !deleted.is_empty() {
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            deleted.join(", ")
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} group(s) could not be deleted",
            failed.len(),
            a.group.len()
        );
    }
    Ok(())
}

/// Left-aligned columns two spaces apart, widths from the widest cell; the last column is
/// not padded, so lines carry no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_case_insensitively() {
        assert_eq!(parse_state("stable").unwrap(), "Stable");
        assert_eq!(
            parse_state("PREPARINGREBALANCE").unwrap(),
            "PreparingRebalance"
        );
        assert!(parse_state("running")
            .unwrap_err()
            .contains("one of: Empty"));
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "LONGER", "C"],
            &[vec!["xyz".into(), "1".into(), "last".into()]],
        );
        assert_eq!(t, "A    LONGER  C\nxyz  1       last\n");
    }
}
