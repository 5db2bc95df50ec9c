//! `twofactorctl check-directory [--as USER]`: whether the attributes that
//! hold the state are fit for it, in the directory as it is. Above all,
//! whether a user can write them on her own entry: on Active Directory the
//! first factor is also an LDAP bind credential, and whoever can write her
//! state can delete a value or put an older one back (a MAC stops forged
//! values, not those).
//!
//! Gathered with the service account (the schema, what it may write) and,
//! with `--as`, bound as the user herself (what she may write): on Active
//! Directory from `allowedAttributesEffective`, which the server computes
//! from the access rules without any write; elsewhere with a modify that
//! adds a probe value and deletes it in the same operation (nothing
//! changes). The verdict (`assess`) is pure.

use serde::Serialize;

use crate::config::{LdapSettings, Role, Scope, Settings};
use crate::secret::Secret;
use crate::store::{Directory, Found, LdapDirectory, Lookup, StoreError};

/// What was found about one role's attribute (`None`: not known).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttributeFacts {
    pub role: &'static str,
    pub attribute: String,
    pub in_schema: Option<bool>,
    pub single_valued: Option<bool>,
    /// The schema's limit on a value's length (Active Directory's `rangeUpper`).
    pub max_length: Option<u64>,
    /// The Active Directory property set it belongs to, by name.
    pub property_set: Option<String>,
    /// The user named with `--as` may write it on her own entry.
    pub user_may_write: Option<bool>,
    pub service_may_write: Option<bool>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `active-directory` or `ldap`.
    pub directory: &'static str,
    pub user: Option<String>,
    /// How writability was found out: `allowedAttributesEffective` or `probe-write`.
    pub method: &'static str,
    pub attributes: Vec<AttributeFacts>,
    /// Every problem, one sentence each; none: fit for the state.
    pub problems: Vec<String>,
}

/// The longest value each role stores, with room to spare (a TOTP record of
/// a SHA-512 secret and a serial; a prompt for a user with eight passkeys).
pub fn needed_length(role: Role) -> u64 {
    match role {
        Role::Completion => 160,
        Role::Totp => 256,
        Role::TotpLast => 96,
        Role::Failures => 160,
        Role::EmailCode => 160,
        Role::Recovery => 128,
        Role::WebAuthn => 1024,
        Role::WebAuthnPending => 4096,
    }
}

/// The problems in `facts`, in their order.
pub fn assess(facts: &[AttributeFacts], user: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    for f in facts {
        let (attr, role) = (&f.attribute, f.role);
        let multi = Role::ALL.iter().any(|r| r.as_str() == role && r.is_multi_valued());
        if f.in_schema == Some(false) {
            problems.push(format!("{attr} ({role}) is not an attribute of the directory's schema"));
            continue;
        }
        if f.user_may_write == Some(true) {
            let set = f
                .property_set
                .as_deref()
                .map(|s| format!(" (it is in the property set {s}, which SELF may write by default)"))
                .unwrap_or_default();
            problems.push(format!(
                "{attr} ({role}): {} can write it on her own entry{set}; she could delete it or put an older value \
                 back: map {role} to an attribute users cannot write",
                user.unwrap_or("the user")
            ));
        }
        if f.service_may_write == Some(false) {
            problems.push(format!("{attr} ({role}): the service account cannot write it: grant it write access"));
        }
        match f.single_valued {
            Some(true) if multi => problems.push(format!("{attr} ({role}) holds one value, and {role} needs several")),
            Some(false) if !multi => problems.push(format!(
                "{attr} ({role}) is multi-valued: {role} needs a single-valued attribute (two first writes at once \
                 would both land)"
            )),
            _ => {}
        }
        let needed = Role::ALL.iter().find(|r| r.as_str() == role).map_or(0, |r| needed_length(*r));
        if let Some(max) = f.max_length.filter(|max| *max < needed) {
            problems.push(format!("{attr} ({role}) takes values of at most {max} characters; {role} needs {needed}"));
        }
    }
    problems
}

/// A user to check as: her name and her directory password.
pub struct AsUser<'a> {
    pub name: &'a str,
    pub password: Secret,
}

/// Gathers the facts and assesses them.
pub fn check(directory: &LdapDirectory, settings: &Settings, as_user: Option<AsUser<'_>>) -> Result<Report, String> {
    let root = root_dse(directory)?;
    let ad = root.values("schemaNamingContext").first().cloned();
    let mut facts: Vec<AttributeFacts> = Role::ALL
        .iter()
        .map(|r| AttributeFacts {
            role: r.as_str(),
            attribute: settings.attribute(*r).to_string(),
            in_schema: None,
            single_valued: None,
            max_length: None,
            property_set: None,
            user_may_write: None,
            service_may_write: None,
        })
        .collect();
    match &ad {
        Some(schema) => {
            let config = root.values("configurationNamingContext").first().cloned().unwrap_or_default();
            for f in &mut facts {
                ad_schema(directory, schema, &config, f)?;
            }
        }
        None => {
            if let Some(subschema) = root.values("subschemaSubentry").first() {
                ldap_schema(directory, subschema, &mut facts)?;
            }
        }
    }
    let method = if ad.is_some() { "allowedAttributesEffective" } else { "probe-write" };
    let user = as_user.as_ref().map(|u| u.name.to_string());
    if let Some(as_user) = as_user {
        let dn = match directory.find_user(as_user.name, &[]).map_err(|e| e.to_string())? {
            Lookup::Found(entry) => entry.dn,
            Lookup::NotFound => return Err(format!("no user '{}' in the directory", as_user.name)),
            Lookup::Ambiguous => return Err(format!("more than one entry matches '{}'", as_user.name)),
        };
        let ldap = settings.ldap.as_ref().ok_or("TwoFactorLDAPURL is not set")?;
        let bound_as_user =
            LdapSettings { bind_dn: Some(dn.clone()), bind_password: Some(as_user.password), ..ldap.clone() };
        let as_her = LdapDirectory::new(&bound_as_user)?;
        let hers =
            writable(&as_her, &dn, &facts, ad.is_some()).map_err(|e| format!("bound as {}: {e}", as_user.name))?;
        let service = writable(directory, &dn, &facts, ad.is_some()).map_err(|e| e.to_string())?;
        for ((f, user_may), service_may) in facts.iter_mut().zip(hers).zip(service) {
            f.user_may_write = Some(user_may);
            f.service_may_write = Some(service_may);
        }
    }
    let problems = assess(&facts, user.as_deref());
    Ok(Report {
        directory: if ad.is_some() { "active-directory" } else { "ldap" },
        user,
        method,
        attributes: facts,
        problems,
    })
}

fn root_dse(directory: &LdapDirectory) -> Result<Found, String> {
    let attrs = ["schemaNamingContext", "configurationNamingContext", "subschemaSubentry"];
    let found = directory.search("", Scope::Base, "(objectClass=*)", &attrs, 1).map_err(|e| e.to_string())?;
    Ok(found.into_iter().next().unwrap_or_default())
}

/// Active Directory's schema entry of the attribute, and its property set.
fn ad_schema(directory: &LdapDirectory, schema: &str, config: &str, f: &mut AttributeFacts) -> Result<(), String> {
    let filter = format!("(lDAPDisplayName={})", crate::store::escape::filter_value(&f.attribute));
    let attrs = ["isSingleValued", "rangeUpper", "attributeSecurityGUID"];
    let found = directory.search(schema, Scope::One, &filter, &attrs, 2).map_err(|e| e.to_string())?;
    let Some(entry) = found.first() else {
        f.in_schema = Some(false);
        return Ok(());
    };
    f.in_schema = Some(true);
    f.single_valued = entry.values("isSingleValued").first().map(|v| v.eq_ignore_ascii_case("TRUE"));
    f.max_length = entry.values("rangeUpper").first().and_then(|v| v.parse().ok());
    // Binary, unless its bytes happen to be UTF-8.
    let guid = match entry.binary_values("attributeSecurityGUID").first() {
        Some(bytes) => guid_string(bytes),
        None => entry.values("attributeSecurityGUID").first().and_then(|text| guid_string(text.as_bytes())),
    };
    if let Some(guid) = guid {
        let rights = format!("CN=Extended-Rights,{config}");
        let filter = format!("(rightsGuid={guid})");
        let set = directory.search(&rights, Scope::One, &filter, &["cn"], 1).map_err(|e| e.to_string())?;
        f.property_set = Some(set.first().and_then(|e| e.values("cn").first().cloned()).unwrap_or(guid));
    }
    Ok(())
}

/// A GUID as AD stores it (the first three fields little-endian) in its
/// usual spelling.
pub fn guid_string(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// The subschema's definitions (RFC 4512): present, single-valued.
fn ldap_schema(directory: &LdapDirectory, subschema: &str, facts: &mut [AttributeFacts]) -> Result<(), String> {
    let found = directory
        .search(subschema, Scope::Base, "(objectClass=*)", &["attributeTypes"], 1)
        .map_err(|e| e.to_string())?;
    let Some(entry) = found.first() else { return Ok(()) };
    let definitions = entry.values("attributeTypes");
    for f in facts {
        let definition = definitions.iter().find(|d| names_of(d).iter().any(|n| n.eq_ignore_ascii_case(&f.attribute)));
        f.in_schema = Some(definition.is_some());
        f.single_valued = definition.map(|d| d.split_whitespace().any(|w| w == "SINGLE-VALUE"));
    }
    Ok(())
}

/// The NAMEs of an attribute type definition: `NAME 'a'` or `NAME ( 'a' 'b' )`.
pub fn names_of(definition: &str) -> Vec<&str> {
    let Some(rest) = definition.split_once(" NAME ").map(|(_, r)| r.trim_start()) else { return Vec::new() };
    let list = match rest.strip_prefix('(') {
        Some(inner) => inner.split(')').next().unwrap_or(""),
        None => rest.split_whitespace().next().unwrap_or(""),
    };
    list.split_whitespace().map(|n| n.trim_matches('\'')).filter(|n| !n.is_empty()).collect()
}

/// Per fact, whether the directory's bound account may write it on `dn`.
fn writable(directory: &LdapDirectory, dn: &str, facts: &[AttributeFacts], ad: bool) -> Result<Vec<bool>, StoreError> {
    if ad {
        let found = directory.search(dn, Scope::Base, "(objectClass=*)", &["allowedAttributesEffective"], 1)?;
        let allowed = found.first().map(|e| e.values("allowedAttributesEffective").to_vec()).unwrap_or_default();
        return Ok(facts.iter().map(|f| allowed.iter().any(|a| a.eq_ignore_ascii_case(&f.attribute))).collect());
    }
    facts.iter().map(|f| directory.may_write(dn, &f.attribute)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(role: &'static str, attribute: &str) -> AttributeFacts {
        AttributeFacts {
            role,
            attribute: attribute.into(),
            in_schema: Some(true),
            single_valued: Some(!Role::ALL.iter().any(|r| r.as_str() == role && r.is_multi_valued())),
            max_length: None,
            property_set: None,
            user_may_write: Some(false),
            service_may_write: Some(true),
        }
    }

    #[test]
    fn a_fit_mapping_has_no_problem() {
        let facts: Vec<AttributeFacts> = Role::ALL.iter().map(|r| fact(r.as_str(), r.ad_attribute())).collect();
        assert!(assess(&facts, Some("alice")).is_empty());
    }

    #[test]
    fn every_problem_is_named_with_its_attribute() {
        let mut writable = fact("failures", "msDS-cloudExtensionAttribute3");
        writable.user_may_write = Some(true);
        writable.property_set = Some("Personal-Information".into());
        let mut single = fact("completion", "employeeType");
        single.single_valued = Some(true);
        let mut multi = fact("totp-last", "carLicense");
        multi.single_valued = Some(false);
        let mut short = fact("webauthn", "x500uniqueIdentifier");
        short.max_length = Some(256);
        let mut missing = fact("totp", "extensionAttribute11");
        missing.in_schema = Some(false);
        let mut not_granted = fact("recovery", "labeledURI");
        not_granted.service_may_write = Some(false);
        let problems = assess(&[writable, single, multi, short, missing, not_granted], Some("alice"));
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].starts_with("msDS-cloudExtensionAttribute3 (failures): alice can write it"));
        assert!(problems[0].contains("Personal-Information"));
        assert!(problems[1].contains("employeeType (completion) holds one value"));
        assert!(problems[2].contains("carLicense (totp-last) is multi-valued"));
        assert!(problems[3].contains("at most 256 characters; webauthn needs 1024"));
        assert!(problems[4].contains("extensionAttribute11 (totp) is not an attribute"));
        assert!(problems[5].contains("the service account cannot write it"));
    }

    #[test]
    fn guids_in_their_usual_spelling() {
        // Personal-Information, as AD stores it.
        let stored = [0x86, 0xb8, 0xb5, 0x77, 0x4a, 0x94, 0xd1, 0x11, 0xae, 0xbd, 0, 0, 0xf8, 3, 0x67, 0xc1];
        assert_eq!(guid_string(&stored).as_deref(), Some("77b5b886-944a-11d1-aebd-0000f80367c1"));
        assert_eq!(guid_string(&[1, 2, 3]), None);
    }

    #[test]
    fn names_of_attribute_type_definitions() {
        assert_eq!(names_of("( 1.2.3 NAME 'twoFactorTOTP' DESC 'x' SINGLE-VALUE )"), ["twoFactorTOTP"]);
        assert_eq!(names_of("( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )"), ["cn", "commonName"]);
        assert!(names_of("( 1.2.3 DESC 'no name' )").is_empty());
    }
}
