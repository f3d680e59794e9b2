//! Who may see and do what: each rule stated once. The desk applies them to requests, the search index to
//! its matches, and the SQL filters that implement the same rule in storage name the rule they follow.

use crate::Role;

/// The person asking: their account id and role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer<Id> {
    pub id: Id,
    pub role: Role,
}

/// Who may read a ticket filed by `created_by` and assigned to `assigned_to`: its requester, its assignee
/// (a moderator), and admins. Anyone else is told it does not exist.
pub fn may_see<Id: PartialEq>(viewer: Viewer<Id>, created_by: Id, assigned_to: Option<Id>) -> bool {
    viewer.role == Role::Admin || created_by == viewer.id || may_work(viewer, assigned_to)
}

/// Who may work a ticket assigned to `assigned_to` (change it, write and read internal notes, see
/// suggestions, merge it): its assignee if a moderator, and admins.
pub fn may_work<Id: PartialEq>(viewer: Viewer<Id>, assigned_to: Option<Id>) -> bool {
    viewer.role == Role::Admin || (viewer.role == Role::Moderator && assigned_to == Some(viewer.id))
}

/// Who may choose a ticket's assignee by hand: admins (routing chooses otherwise).
pub fn may_reassign(role: Role) -> bool {
    role == Role::Admin
}

/// Who may change account `target`: admins any, in any way; staff their own availability (away, capacity)
/// when `availability_only`; users nothing.
pub fn may_change_account<Id: PartialEq>(viewer: Viewer<Id>, target: Id, availability_only: bool) -> bool {
    viewer.role == Role::Admin || (viewer.role != Role::User && viewer.id == target && availability_only)
}

/// Who may manage the desk itself (accounts, taxonomy, jobs, the AI engine, the dashboard): admins.
pub fn may_administer(role: Role) -> bool {
    role == Role::Admin
}

/// Who may use canned responses and apply macros (and keep canned responses of their own): staff.
pub fn may_use_workflow(role: Role) -> bool {
    role.is_staff()
}

/// Who may manage what the whole team shares: shared canned responses, macros, rules and webhooks: admins.
pub fn may_manage_workflow(role: Role) -> bool {
    role == Role::Admin
}

/// Who may change or delete a canned response owned by `owner` (`None`: shared): its owner; admins shared ones.
pub fn may_edit_canned<Id: PartialEq>(viewer: Viewer<Id>, owner: Option<Id>) -> bool {
    match owner {
        Some(owner) => owner == viewer.id,
        None => may_manage_workflow(viewer.role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u8 = 1;
    const OTHER: u8 = 2;

    fn viewer(role: Role) -> Viewer<u8> {
        Viewer { id: ME, role }
    }

    #[test]
    fn requesters_see_their_own_moderators_their_assigned_admins_all() {
        assert!(may_see(viewer(Role::User), ME, None));
        assert!(!may_see(viewer(Role::User), OTHER, Some(ME)), "a user is never an assignee");
        assert!(may_see(viewer(Role::Moderator), OTHER, Some(ME)));
        assert!(!may_see(viewer(Role::Moderator), OTHER, Some(OTHER)));
        assert!(may_see(viewer(Role::Admin), OTHER, None));
    }

    #[test]
    fn only_the_assigned_moderator_and_admins_work_a_ticket() {
        assert!(!may_work(viewer(Role::User), Some(ME)));
        assert!(may_work(viewer(Role::Moderator), Some(ME)));
        assert!(!may_work(viewer(Role::Moderator), None));
        assert!(may_work(viewer(Role::Admin), None));
    }

    #[test]
    fn staff_change_only_their_own_availability() {
        assert!(may_change_account(viewer(Role::Moderator), ME, true));
        assert!(!may_change_account(viewer(Role::Moderator), ME, false));
        assert!(!may_change_account(viewer(Role::Moderator), OTHER, true));
        assert!(!may_change_account(viewer(Role::User), ME, true));
        assert!(may_change_account(viewer(Role::Admin), OTHER, false));
    }
}
