//! Group membership from the system's user database (NSS through libc).

use cacheos_core::Accounts;
use nix::unistd::{Group, Uid, User};

/// Looks users and groups up through NSS.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn in_group(&self, uid: u32, group: &str) -> bool {
        let Ok(Some(g)) = Group::from_name(group) else {
            return false;
        };
        let Ok(Some(u)) = User::from_uid(Uid::from_raw(uid)) else {
            return false;
        };
        u.gid == g.gid || g.mem.contains(&u.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_group_root_and_unknown_groups_are_empty() {
        assert!(SystemAccounts.in_group(0, "root"));
        assert!(!SystemAccounts.in_group(0, "no-such-group-cacheos-test"));
        assert!(!SystemAccounts.in_group(4_000_000, "root"));
    }
}
