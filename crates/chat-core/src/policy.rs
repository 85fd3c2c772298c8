//! Who may do what with a thread: the `ChatThreadPolicy` of the Laravel seed.
//!
//! - The feature flag comes first: when chat is disabled nobody may do anything
//!   (SPEC §3.7 answers `501` on every chat route, admins included).
//! - `role == "admin"` overrides the participant check (super-admin); otherwise only the
//!   thread's participants (its client, its admin and the request's care team) may
//!   view, post and close it.
//! - A closed thread refuses posts for everyone, admins included; a stranger is told
//!   `Forbidden`, not that the thread is closed.

use crate::model::{ServiceRequest, Thread, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAction {
    /// List messages, subscribe to the thread's channel.
    View,
    /// Post a message, get an upload URL.
    Post,
    /// Close the thread.
    Close,
    /// Export the thread for the medical record (SPEC §10): admins and the staff
    /// among its participants, not its client.
    Export,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Disabled,
    Forbidden,
    ThreadClosed,
}

/// The policy, with the feature flag it depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub enabled: bool,
}

impl Policy {
    pub fn authorize(
        &self,
        user: &User,
        thread: &Thread,
        action: ThreadAction,
    ) -> Result<(), Denied> {
        if !self.enabled {
            return Err(Denied::Disabled);
        }
        // Access first, so that a stranger does not learn whether the thread is closed.
        if !(user.is_admin() || thread.is_participant(user.id)) {
            return Err(Denied::Forbidden);
        }
        if action == ThreadAction::Post && thread.is_closed() {
            return Err(Denied::ThreadClosed);
        }
        if action == ThreadAction::Export && !user.is_admin() && user.id == thread.client_id {
            return Err(Denied::Forbidden);
        }
        Ok(())
    }

    /// Whether `user` acts on the thread only through the admin override: an admin who
    /// is not a participant. Such access is audited as such.
    pub fn is_override(user: &User, thread: &Thread) -> bool {
        user.is_admin() && !thread.is_participant(user.id)
    }

    /// Admins, the request's client and its staff may open its thread.
    pub fn may_open(&self, user: &User, request: &ServiceRequest) -> Result<(), Denied> {
        if !self.enabled {
            return Err(Denied::Disabled);
        }
        if user.is_admin() || user.id == request.client_id || request.staff_ids.contains(&user.id) {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }

    /// Only admins (the host system) register service requests.
    pub fn may_register_request(&self, user: &User) -> Result<(), Denied> {
        if !self.enabled {
            Err(Denied::Disabled)
        } else if user.is_admin() {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RequestId, ThreadId, UserId};
    use crate::model::ThreadStatus;

    fn uid(n: i64) -> UserId {
        UserId::new(n).unwrap_or_else(|| panic!("bad id"))
    }

    fn thread(status: ThreadStatus) -> Thread {
        Thread {
            id: ThreadId::new(1).unwrap_or_else(|| panic!("bad id")),
            request_id: RequestId::new(1).unwrap_or_else(|| panic!("bad id")),
            admin_id: Some(uid(100)),
            client_id: uid(7),
            status,
            opened_at: chrono::DateTime::UNIX_EPOCH,
            closed_at: None,
            staff_ids: vec![uid(11)],
            hold: false,
            record: crate::model::RecordState::None,
        }
    }

    #[test]
    fn the_policy_table() {
        use Denied::*;
        use ThreadAction::*;
        let on = Policy { enabled: true };
        let off = Policy { enabled: false };
        let admin = User::new(uid(100), "admin");
        let other_admin = User::new(uid(101), "admin");
        let client = User::new(uid(7), "client");
        let nurse = User::new(uid(11), "nurse");
        let stranger = User::new(uid(8), "client");
        let open = thread(ThreadStatus::Open);
        let closed = thread(ThreadStatus::Closed);

        for user in [&admin, &other_admin, &client, &nurse] {
            for action in [View, Post, Close] {
                assert_eq!(
                    on.authorize(user, &open, action),
                    Ok(()),
                    "{user:?} {action:?}"
                );
            }
            assert_eq!(on.authorize(user, &closed, View), Ok(()));
            assert_eq!(on.authorize(user, &closed, Close), Ok(()));
            assert_eq!(on.authorize(user, &closed, Post), Err(ThreadClosed));
            assert_eq!(off.authorize(user, &open, View), Err(Disabled));
        }
        for action in [View, Post, Close] {
            assert_eq!(on.authorize(&stranger, &open, action), Err(Forbidden));
        }
        // A closed thread is refused as closed only to those who could post to it.
        for action in [View, Post, Close] {
            assert_eq!(on.authorize(&stranger, &closed, action), Err(Forbidden));
        }
    }

    #[test]
    fn the_care_team_may_open_and_only_a_non_participant_admin_is_an_override() {
        let on = Policy { enabled: true };
        let request = ServiceRequest::new(
            RequestId::new(5).unwrap_or_else(|| panic!("bad id")),
            uid(7),
            vec![uid(12), uid(11), uid(12)],
        );
        assert_eq!(
            request.staff_ids,
            vec![uid(11), uid(12)],
            "distinct, ascending"
        );
        for (user, allowed) in [
            (User::new(uid(7), "client"), true),
            (User::new(uid(12), "nurse"), true),
            (User::new(uid(100), "admin"), true),
            (User::new(uid(13), "nurse"), false),
        ] {
            assert_eq!(on.may_open(&user, &request).is_ok(), allowed, "{user:?}");
        }
        let open = thread(ThreadStatus::Open);
        assert!(!Policy::is_override(&User::new(uid(100), "admin"), &open));
        assert!(Policy::is_override(&User::new(uid(101), "admin"), &open));
        assert!(!Policy::is_override(&User::new(uid(11), "nurse"), &open));
    }
}
