//! What the e-mail notices (src/notify/) keep in the store: the relay, sender, recipients and
//! language the operator set (rows `notify.*` of the `setting` table; the relay's password is a sealed
//! secret setting, so the purge at finish deletes it with the others), one mark per notice already
//! sent (`notify.sent.KEY`, so a restart never sends it again; marks survive the purge) and the last
//! send's result for the status. The values are kept as text here; `notify` checks and interprets them.

use anyhow::Result;
use rusqlite::params;

use super::Store;
use crate::secret::Secret;

/// The notice settings as stored; `None` and empty lists where nothing is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyRows {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// "starttls", "tls" or "plain" (checked by `notify`).
    pub security: Option<String>,
    pub login: Option<String>,
    pub from: Option<String>,
    pub operator: Vec<String>,
    pub customer: Vec<String>,
    /// "sv" or "en".
    pub language: Option<String>,
}

const HOST: &str = "notify.smtp.host";
const PORT: &str = "notify.smtp.port";
const SECURITY: &str = "notify.smtp.security";
const LOGIN: &str = "notify.smtp.login";
const FROM: &str = "notify.from";
const OPERATOR: &str = "notify.operator";
const CUSTOMER: &str = "notify.customer";
const LANGUAGE: &str = "notify.language";
const LAST: &str = "notify.last";
const SENT: &str = "notify.sent.";
/// The secret setting's name (stored as `secret.notify.smtp_password`, which the purge deletes).
const PASSWORD: &str = "notify.smtp_password";

impl Store {
    pub fn notify_rows(&self) -> Result<NotifyRows> {
        let list = |key: &str| -> Result<Vec<String>> {
            Ok(self.setting(key)?.unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        };
        Ok(NotifyRows {
            host: self.setting(HOST)?,
            port: self.setting(PORT)?.and_then(|p| p.parse().ok()),
            security: self.setting(SECURITY)?,
            login: self.setting(LOGIN)?,
            from: self.setting(FROM)?,
            operator: list(OPERATOR)?,
            customer: list(CUSTOMER)?,
            language: self.setting(LANGUAGE)?,
        })
    }

    /// Stores every row of `rows` in one transaction (a `None` or empty value deletes its row), and the
    /// password when one is given (sealed; `Some` of an empty secret deletes it).
    pub fn set_notify_rows(&self, rows: &NotifyRows, password: Option<&Secret>) -> Result<()> {
        let sealed = match password {
            Some(p) if !p.is_empty() => Some(Some(crate::imap::hex(&self.seal(p, PASSWORD)?))),
            Some(_) => Some(None),
            None => None,
        };
        let values = [
            (HOST, rows.host.clone()),
            (PORT, rows.port.map(|p| p.to_string())),
            (SECURITY, rows.security.clone()),
            (LOGIN, rows.login.clone()),
            (FROM, rows.from.clone()),
            (OPERATOR, Some(rows.operator.join(","))),
            (CUSTOMER, Some(rows.customer.join(","))),
            (LANGUAGE, rows.language.clone()),
        ];
        self.write(|tx| {
            let put = |key: &str, value: Option<String>| -> Result<()> {
                match value.filter(|v| !v.is_empty()) {
                    Some(v) => tx.conn().execute(
                        "INSERT INTO setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![key, v],
                    )?,
                    None => tx.conn().execute("DELETE FROM setting WHERE key = ?1", [key])?,
                };
                Ok(())
            };
            for (key, value) in values {
                put(key, value)?;
            }
            if let Some(sealed) = sealed {
                put(&format!("secret.{PASSWORD}"), sealed)?;
            }
            Ok(())
        })
    }

    /// The relay's password; None when none was set or the purge deleted it.
    pub fn notify_password(&self) -> Result<Option<Secret>> {
        self.secret_setting(PASSWORD)
    }

    /// Marks the notice `key` as sent; false when it already was (then it must not be sent again).
    pub fn claim_notice(&self, key: &str) -> Result<bool> {
        let claimed = self.write(|tx| {
            Ok(tx.conn().execute(
                "INSERT INTO setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![format!("{SENT}{key}"), crate::units::now().to_string()],
            )?)
        })?;
        Ok(claimed == 1)
    }

    /// Forgets the mark of notice `key`, so it is sent again the next time it happens (a streak ended).
    pub fn forget_notice(&self, key: &str) -> Result<()> {
        self.write(|tx| Ok(tx.conn().execute("DELETE FROM setting WHERE key = ?1", [format!("{SENT}{key}")]).map(|_| ())?))
    }

    #[cfg(test)]
    pub fn notice_sent(&self, key: &str) -> Result<bool> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM setting WHERE key = ?1", [format!("{SENT}{key}")], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// The last send's result, as JSON text written by `notify`.
    pub fn last_notice(&self) -> Result<Option<String>> {
        self.setting(LAST)
    }

    pub fn set_last_notice(&self, json: &str) -> Result<()> {
        self.set_setting(LAST, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_marks_are_claimed_once_and_the_purge_takes_the_password_only() {
        let dir = std::env::temp_dir().join(format!("pf-notify-rows-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.notify_rows().unwrap(), NotifyRows::default());
        let rows = NotifyRows {
            host: Some("smtp.example.se".into()),
            port: Some(587),
            security: Some("starttls".into()),
            login: Some("flytt".into()),
            from: Some("flytt@example.se".into()),
            operator: vec!["drift@example.se".into(), "jour@example.se".into()],
            customer: vec!["it@kund.se".into()],
            language: Some("sv".into()),
        };
        store.set_notify_rows(&rows, Some(&Secret::new("relä-lösen"))).unwrap();
        assert_eq!(store.notify_rows().unwrap(), rows);
        assert_eq!(store.notify_password().unwrap().unwrap().expose(), "relä-lösen");
        // Without a password the stored one stays.
        store.set_notify_rows(&rows, None).unwrap();
        assert!(store.notify_password().unwrap().is_some());
        assert!(store.claim_notice("check:1").unwrap());
        assert!(!store.claim_notice("check:1").unwrap());
        assert!(store.notice_sent("check:1").unwrap());
        store.forget_notice("check:1").unwrap();
        assert!(store.claim_notice("check:1").unwrap());
        store.purge().unwrap();
        assert!(store.notify_password().unwrap().is_none(), "the purge deletes the relay's password");
        assert!(store.notice_sent("check:1").unwrap(), "marks stay, so nothing is sent again");
        assert_eq!(store.notify_rows().unwrap(), rows);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
