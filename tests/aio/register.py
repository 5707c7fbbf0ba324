"""Registers the all-in-one's keystone objects in one session (idempotent).

Run by up.sh with /usr/bin/python3 after `keystone-manage bootstrap` created the
admin user, project, roles and the identity endpoints. One keystoneclient session
does in ~2 s what ~30 `openstack` CLI calls do in ~60 s.
"""
import os
import sys

from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client

URL = "http://127.0.0.1:5000/v3"
REGION = os.environ.get("AIO_REGION", "RegionOne")
PASS = os.environ["AIO_PASS"]

SERVICES = [
    # name, type, description, url
    ("nova", "compute", "OpenStack Compute", "http://127.0.0.1:8774/v2.1"),
    ("glance", "image", "OpenStack Image", "http://127.0.0.1:9292"),
    ("placement", "placement", "Placement API", "http://127.0.0.1:8778"),
    ("neutron", "network", "OpenStack Networking", "http://127.0.0.1:9696"),
]


def one(items, what):
    """Returns the single item or None; more than one is an inconsistency."""
    items = list(items)
    if len(items) > 1:
        sys.exit("more than one %s: %s" % (what, items))
    return items[0] if items else None


def main():
    auth = v3.Password(auth_url=URL, username="admin",
                       password=os.environ["AIO_ADMIN_PASS"],
                       project_name="admin", user_domain_id="default",
                       project_domain_id="default")
    ks = client.Client(session=session.Session(auth=auth), interface="public")
    domain = ks.domains.get("default")

    def project(name, desc):
        p = one(ks.projects.list(domain=domain, name=name), "project " + name)
        if p is None:
            p = ks.projects.create(name, domain, description=desc)
            print("created project", name)
        return p

    def role(name):
        r = one(ks.roles.list(name=name), "role " + name)
        if r is None:
            r = ks.roles.create(name)
            print("created role", name)
        return r

    def user(name, password, proj, roles):
        u = one(ks.users.list(domain=domain, name=name), "user " + name)
        if u is None:
            u = ks.users.create(name, domain=domain, password=password,
                                default_project=proj)
            print("created user", name)
        else:
            ks.users.update(u, password=password)
        for r in roles:
            ks.roles.grant(r, user=u, project=proj)

    admin_role = role("admin")
    member_role = role("member")
    role("reader")
    # nova and neutron send service tokens; keystonemiddleware checks this role.
    service_role = role("service")

    service = project("service", "Service project")
    for name, *_ in SERVICES:
        user(name, PASS, service, [admin_role, service_role])
    demo = project("demo", "Demo project for end-to-end tests")
    user("demo", os.environ["AIO_DEMO_PASS"], demo, [member_role, role("reader")])

    for name, stype, desc, url in SERVICES:
        svc = one(ks.services.list(type=stype), "service " + stype)
        if svc is None:
            svc = ks.services.create(name, type=stype, description=desc)
            print("created service", name)
        have = {e.interface: e for e in ks.endpoints.list(service=svc)}
        for iface in ("public", "internal", "admin"):
            e = have.get(iface)
            if e is None:
                ks.endpoints.create(svc, url, interface=iface, region=REGION)
                print("created endpoint", name, iface)
            elif e.url != url:
                ks.endpoints.update(e, url=url)
    print("registration complete")


if __name__ == "__main__":
    main()
