//! The project's LDAP schema as the writers need it: which auxiliary class
//! an attribute belongs to (apache-conf/twofactor.schema).

use crate::config::Role;

/// The auxiliary class that carries the project's attributes.
pub const OBJECT_CLASS: &str = "twoFactorUser";

/// The auxiliary class an attribute needs: the project's class for the
/// project's own attributes (in any case, as LDAP compares names), none
/// for attributes mapped onto an existing schema (`TwoFactorAttribute`).
pub fn class_for(attr: &str) -> Option<&'static str> {
    Role::ALL.iter().any(|r| r.default_attribute().eq_ignore_ascii_case(attr)).then_some(OBJECT_CLASS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_attributes_need_the_class_in_any_case_and_mapped_ones_none() {
        assert_eq!(class_for("twoFactorTOTP"), Some(OBJECT_CLASS));
        assert_eq!(class_for("TWOFACTORtotp"), Some(OBJECT_CLASS));
        assert_eq!(class_for("twoFactorFailures"), Some(OBJECT_CLASS));
        assert_eq!(class_for("description"), None);
        assert_eq!(class_for("employeeType"), None);
    }
}
