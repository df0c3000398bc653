//! The wire types of budgets and what members spent.

use cairn_core::UserId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// US dollars per calendar month (UTC), 0 to 10^9; `null` removes the limit.
    pub monthly_usd: Option<f64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SpendingQuery {
    /// Months back, this one included (1 to 24, default 6).
    pub months: Option<u8>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MonthSpending {
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberSpending {
    pub user_id: UserId,
    pub display_name: String,
    /// The member's monthly budget in this project; `null`: none.
    pub monthly_usd: Option<f64>,
    /// Their monthly budget across projects, set by an administrator; `null`: none.
    pub across_projects_usd: Option<f64>,
    /// Spent in this project this month.
    pub this_month_usd: f64,
    /// Spent in this project, month by month, oldest first (months without
    /// spending left out).
    pub months: Vec<MonthSpending>,
}
