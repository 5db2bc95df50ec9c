"""Prepares a freshly provisioned Samba AD domain (offline, on its sam.ldb)
for mod_twofactor's tests: the users, a service account, and the service
account's right to read and write the attributes that hold the state.

    python3 prepare.py SMB_CONF SERVICE_PASSWORD ATTRIBUTE... -- UID:PASSWORD:MAIL...

Run once per provisioned template; every test copies the result.
"""

import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import misc, security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

# The schemaIDGUID of the user class: the ACEs apply to user objects only.
USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"


def sid_of(db, base, account):
    found = db.search(base=base, expression="(sAMAccountName=%s)" % account, attrs=["objectSid"])
    return ndr_unpack(security.dom_sid, found[0]["objectSid"][0])


def grant(db, container, aces):
    """Adds `aces` (SDDL) to the DACL of `container`; Samba passes them on to its children."""
    found = db.search(base=container, scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"])
    descriptor = ndr_unpack(security.descriptor, found[0]["nTSecurityDescriptor"][0])
    added = security.descriptor.from_sddl("D:" + aces, security.dom_sid(db.get_domain_sid()))
    for ace in added.dacl.aces:
        descriptor.dacl_add(ace)
    message = ldb.Message()
    message.dn = ldb.Dn(db, container)
    message["nTSecurityDescriptor"] = ldb.MessageElement(
        ndr_pack(descriptor), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
    db.modify(message)


def main(argv):
    conf, service_password = argv[1], argv[2]
    split = argv.index("--")
    attributes, users = argv[3:split], argv[split + 1:]
    lp = LoadParm()
    lp.load(conf)
    db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
    base = str(db.domain_dn())
    for user in users:
        uid, password, mail = user.split(":", 2)
        db.newuser(uid, password, mailaddress=mail)
    db.newuser("svc-twofactor", service_password)
    service = str(sid_of(db, base, "svc-twofactor"))
    schema = str(db.get_schema_basedn())
    aces = ""
    for attribute in attributes:
        found = db.search(base=schema, expression="(lDAPDisplayName=%s)" % attribute, attrs=["schemaIDGUID"])
        if len(found) != 1:
            raise SystemExit("no attribute %s in the schema" % attribute)
        guid = str(ndr_unpack(misc.GUID, found[0]["schemaIDGUID"][0]))
        aces += "(OA;CI;RPWP;%s;%s;%s)" % (guid, USER_CLASS, service)
    grant(db, "CN=Users," + base, aces)


if __name__ == "__main__":
    main(sys.argv)
