//! Budgets: the limits of one run (steps, tokens, cost, time), and the
//! project's budget across its runs. Reaching one ends a run cleanly, with
//! the reason in words.

use cairn_core::ProjectId;
use cairn_core::store::Store;
use serde::{Deserialize, Serialize};

/// Limits of one run; reaching one ends the run cleanly with a message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub max_steps: u32,
    pub max_tokens: u64,
    pub max_cost_usd: f64,
    pub max_wall_secs: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_steps: 30, max_tokens: 2_000_000, max_cost_usd: 10.0, max_wall_secs: 3600 }
    }
}

/// What a run has used so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Spent {
    /// Model calls.
    pub steps: u32,
    pub tokens: u64,
    pub cost_usd: f64,
    pub elapsed_ms: u64,
}

impl Budget {
    /// Which limit the run has reached, in words, if any.
    pub fn reached(&self, spent: Spent) -> Option<String> {
        if spent.steps >= self.max_steps {
            return Some(format!("the step budget of {} was reached", self.max_steps));
        }
        if spent.tokens >= self.max_tokens {
            return Some(format!("the token budget of {} was reached", self.max_tokens));
        }
        if spent.cost_usd >= self.max_cost_usd {
            return Some(format!("the cost budget of ${:.2} was reached", self.max_cost_usd));
        }
        if spent.elapsed_ms / 1000 >= self.max_wall_secs {
            return Some(format!("the time budget of {} s was reached", self.max_wall_secs));
        }
        None
    }
}

/// Why the project's runs must stop, when its budget (`limit`, US dollars)
/// is spent: what its runs have spent so far reaches it.
pub async fn budget_spent(store: &dyn Store, project: ProjectId, limit: f64) -> cairn_core::Result<Option<String>> {
    let spent = store.project_cost(project).await?;
    Ok((spent >= limit).then(|| format!("the project's budget of ${limit:.2} is spent (${spent:.2})")))
}

/// Why the member's runs must stop, when one of their monthly budgets that
/// applies to the project (the project's own, or the one across projects)
/// is spent this calendar month (UTC).
pub async fn member_budget_spent(
    store: &dyn Store,
    project: ProjectId,
    user: cairn_core::UserId,
) -> cairn_core::Result<Option<String>> {
    let since = cairn_core::lifecycle::month_start(time::OffsetDateTime::now_utc());
    for budget in store.member_budgets(user).await? {
        if budget.project_id.is_some_and(|p| p != project) {
            continue;
        }
        let spent = store.spent_by_member(budget.project_id, user, since).await?;
        if spent >= budget.monthly_usd {
            let scope = if budget.project_id.is_some() { "in this project" } else { "across projects" };
            return Ok(Some(format!(
                "your monthly budget of ${:.2} {scope} is spent (${spent:.2} this month); it starts again next month, \
                 or an owner or administrator can raise it",
                budget.monthly_usd
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_limit_reached_is_named() {
        let budget = Budget { max_steps: 3, max_tokens: 100, max_cost_usd: 1.0, max_wall_secs: 10 };
        assert_eq!(budget.reached(Spent { steps: 2, tokens: 99, cost_usd: 0.99, elapsed_ms: 9_999 }), None);
        let over = |spent: Spent| budget.reached(spent).unwrap();
        assert_eq!(over(Spent { steps: 3, ..Spent::default() }), "the step budget of 3 was reached");
        assert_eq!(over(Spent { tokens: 100, ..Spent::default() }), "the token budget of 100 was reached");
        assert_eq!(over(Spent { cost_usd: 1.0, ..Spent::default() }), "the cost budget of $1.00 was reached");
        assert_eq!(over(Spent { elapsed_ms: 10_000, ..Spent::default() }), "the time budget of 10 s was reached");
    }
}
