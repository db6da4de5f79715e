"""Users, passwords, roles and the cookie key against a real SQLite file."""

import logging
import stat

import pytest

from lungscan import auth, storage
from lungscan.config import Settings
from lungscan.errors import DuplicateUserError, NotFoundError, PasswordPolicyError, ValidationError

GOOD = "correct-horse-42"


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch):
    """Cost 4 instead of 12 keeps the suite fast; hashes stay real bcrypt."""
    real_gensalt = auth.bcrypt.gensalt
    monkeypatch.setattr(auth.bcrypt, "gensalt", lambda rounds=4, prefix=b"2b": real_gensalt(4, prefix))


def test_first_run_generates_admin_password_logged_once(session, caplog):
    with caplog.at_level(logging.WARNING, logger="lungscan.auth"):
        password = auth.ensure_admin(session, password=None)
    assert password and password in caplog.text
    auth.check_password_policy(password, username="admin")
    admin = auth.authenticate(session, username="admin", password=password)
    assert admin is not None and admin.role == "admin"
    assert admin.password_hash != password and admin.password_hash.startswith("$2b$")

    caplog.clear()
    assert auth.ensure_admin(session, password=None) is None  # second start: nothing created, nothing logged
    assert "password" not in caplog.text
    assert len(storage.list_users(session)) == 1


def test_admin_password_from_settings_is_used_and_checked(session):
    assert auth.ensure_admin(session, password=GOOD) is None
    assert auth.authenticate(session, username="admin", password=GOOD) is not None


def test_weak_admin_password_from_env_is_refused_clearly(session):
    with pytest.raises(PasswordPolicyError, match="LUNGSCAN_ADMIN_PASSWORD is too weak.*at least 10 characters"):
        auth.ensure_admin(session, password="admin")
    assert storage.list_users(session) == []


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "at least 10 characters"),
        ("onlyletterslong", "at least one digit"),
        ("1234567890123", "at least one letter"),
        ("x1" + "é" * 40, "at most 72 bytes"),
        (" padded-password-1 ", "leading or trailing"),
        ("alice-password-1", "must not contain the username"),
    ],
)
def test_password_policy_says_what_is_missing(password, message):
    with pytest.raises(PasswordPolicyError, match=message):
        auth.check_password_policy(password, username="alice")


def test_create_user_validates_fields_and_uniqueness(session):
    user = auth.create_user(session, username="Alice", name="Dr Alice", password=GOOD, email="a@example.org")
    assert (user.username, user.role) == ("alice", "clinician")
    with pytest.raises(DuplicateUserError):
        auth.create_user(session, username="alice", name="Other", password=GOOD)
    with pytest.raises(ValidationError, match="Role must be one of"):
        auth.create_user(session, username="bob", name="Bob", password=GOOD, role="root")
    with pytest.raises(ValidationError, match="Email: 'nope' is not an email"):
        auth.create_user(session, username="bob", name="Bob", password=GOOD, email="nope")
    with pytest.raises(ValidationError, match="Username must be"):
        auth.create_user(session, username="b o b", name="Bob", password=GOOD)
    with pytest.raises(PasswordPolicyError):
        auth.create_user(session, username="bob", name="Bob", password="bob")


def test_authenticate_rejects_wrong_unknown_and_disabled(session):
    auth.ensure_admin(session, password=GOOD)
    auth.create_user(session, username="carol", name="Carol", password=GOOD, role="student")
    assert auth.authenticate(session, username="CAROL", password=GOOD).username == "carol"
    assert auth.authenticate(session, username="carol", password=GOOD + "x") is None
    assert auth.authenticate(session, username="nobody", password=GOOD) is None
    auth.set_disabled(session, username="carol", disabled=True)
    assert auth.authenticate(session, username="carol", password=GOOD) is None
    assert auth.active_user(session, username="carol") is None
    auth.set_disabled(session, username="carol", disabled=False)
    assert auth.active_user(session, username="carol").username == "carol"


def test_password_reset_replaces_the_old_password(session):
    auth.create_user(session, username="dave", name="Dave", password=GOOD)
    auth.set_password(session, username="dave", password="new-secret-99")
    assert auth.authenticate(session, username="dave", password=GOOD) is None
    assert auth.authenticate(session, username="dave", password="new-secret-99") is not None
    with pytest.raises(PasswordPolicyError):
        auth.set_password(session, username="dave", password="weak")
    with pytest.raises(NotFoundError):
        auth.set_password(session, username="ghost", password="new-secret-99")


def test_last_active_admin_cannot_be_demoted_or_disabled(session):
    auth.ensure_admin(session, password=GOOD)
    with pytest.raises(ValidationError, match="last active admin"):
        auth.set_role(session, username="admin", role="clinician")
    with pytest.raises(ValidationError, match="last active admin"):
        auth.set_disabled(session, username="admin", disabled=True)
    auth.create_user(session, username="erin", name="Erin", password=GOOD, role="admin")
    auth.set_role(session, username="admin", role="clinician")
    assert storage.get_user(session, username="admin").role == "clinician"
    with pytest.raises(ValidationError, match="Role must be"):
        auth.set_role(session, username="erin", role="superuser")


def test_credentials_work_with_streamlit_authenticator(session):
    from streamlit_authenticator.utilities import Hasher

    auth.ensure_admin(session, password=GOOD)
    auth.create_user(session, username="frank", name="Frank", password=GOOD, role="student", email="f@x.org")
    auth.create_user(session, username="gina", name="Gina", password=GOOD)
    auth.set_disabled(session, username="gina", disabled=True)

    credentials = auth.credentials_for_authenticator(session)
    assert set(credentials["usernames"]) == {"admin", "frank"}  # disabled users cannot log in
    frank = credentials["usernames"]["frank"]
    assert frank == {"name": "Frank", "email": "f@x.org", "password": frank["password"], "roles": ["student"]}
    # The library keeps a string it recognises as a bcrypt hash (no re-hashing) and verifies against it.
    assert Hasher.is_hash(frank["password"])
    assert Hasher.check_pw(GOOD, frank["password"])
    assert not Hasher.check_pw("wrong-password-1", frank["password"])


def test_permissions_keep_patient_records_from_students():
    for page in auth.PATIENT_PAGES:
        assert not auth.can_open("student", page)
        assert auth.can_open("clinician", page) and auth.can_open("admin", page)
    assert auth.allowed_pages("student") == ["models", "gallery", "about"]
    assert not auth.can_open("clinician", "admin")
    assert auth.allowed_pages("admin") == list(auth.PAGES)
    assert auth.allowed_pages(None) == [] and not auth.can_open("hacker", "about")
    assert set(auth.PERMISSIONS) == set(auth.ROLES)


def test_cookie_key_prefers_settings(tmp_path):
    settings = Settings(data_dir=tmp_path, cookie_key="from-secrets-toml", _env_file=None)
    assert auth.cookie_key(settings) == "from-secrets-toml"
    assert not (tmp_path / ".cookie_key").exists()


def test_cookie_key_is_generated_once_private_and_stable(tmp_path):
    settings = Settings(data_dir=tmp_path / "a", cookie_key=None, _env_file=None)
    key = auth.cookie_key(settings)
    path = tmp_path / "a" / ".cookie_key"
    assert len(key) >= 32 and path.read_text() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.cookie_key(settings) == key  # a restart keeps logins valid
    assert auth.cookie_key(Settings(data_dir=tmp_path / "b", cookie_key=None, _env_file=None)) != key
    assert [p.name for p in (tmp_path / "a").iterdir()] == [".cookie_key"]  # no temp file left behind
