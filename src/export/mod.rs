//! Every file postflytt hands out for a spreadsheet program: `csv` (the one CSV writer, which
//! neutralises cells a spreadsheet would run as formulas) and `xlsx` (the minimal workbook writer).
//! The account-list template, the check's results and the customer report are written through these
//! two, so an export is safe to open and looks the same wherever it comes from.

pub mod csv;
pub mod xlsx;
