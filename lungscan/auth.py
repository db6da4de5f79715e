"""Users, roles and passwords: bcrypt hashes in SQLite, never plain text anywhere.

The first run creates the ``admin`` user (`ensure_admin`); admins manage the rest
from the Admin page. Roles decide which pages a user may open (`PERMISSIONS`);
only clinicians and admins ever see patient records.

Notes for the UI on streamlit-authenticator 0.4.2 (read from its source):

- ``stauth.Authenticate(credentials, cookie_name, cookie_key, cookie_expiry_days, auto_hash=False)``.
  Build ``credentials`` with `credentials_for_authenticator` on each run: the library
  mutates the dict (adds ``logged_in``, ``failed_login_attempts``) and lower-cases
  usernames. Its ``auto_hash=True`` would hash only values that do not match
  ``^\\$2[aby]\\$\\d+\\$.{53}$``, so our bcrypt hashes are never re-hashed either way;
  pass ``auto_hash=False`` to skip the check.
- ``authenticator.login(location="main")`` renders the form and returns None; only
  ``location="unrendered"`` returns ``(name, authentication_status, username)``. Read
  ``st.session_state["authentication_status"]`` (None = not tried, False = wrong
  password, True = in), ``["username"]``, ``["name"]``, ``["email"]`` and ``["roles"]``
  (the list from the credentials, here ``[role]``). ``login`` sleeps 0.7 s first
  (``login_sleep_time`` kwarg to ``Authenticate`` changes it).
- The re-authentication cookie is a JWT (HS256) signed with ``cookie_key``, holding the
  username. If that user has since been disabled (so is missing from the credentials),
  ``login`` raises ``streamlit_authenticator.utilities.LoginError('User not authorized')``:
  catch it, call ``logout(location="unrendered")`` and show the login form again.
- ``authenticator.logout(button_name, location="sidebar")`` raises ``LogoutError`` when
  nobody is logged in; it sets the five session keys above to None and deletes the cookie.
- Session state survives a role change or a disable made by an admin in another
  session, so the page guard should re-read the user with `active_user` on every run
  rather than trusting ``st.session_state["roles"]``.
"""

import logging
import os
import secrets
import string
import tempfile
from pathlib import Path

import bcrypt
from pydantic import ValidationError as PydanticValidationError
from sqlmodel import Session

from . import storage
from .config import Settings
from .errors import NotFoundError, PasswordPolicyError, ValidationError
from .storage import ROLES, User, UserCreate

logger = logging.getLogger(__name__)

__all__ = [
    "ADMIN_USERNAME",
    "PAGES",
    "PATIENT_PAGES",
    "PERMISSIONS",
    "ROLES",
    "active_user",
    "allowed_pages",
    "authenticate",
    "can_open",
    "check_password_policy",
    "cookie_key",
    "create_user",
    "credentials_for_authenticator",
    "ensure_admin",
    "hash_password",
    "set_disabled",
    "set_password",
    "set_role",
    "verify_password",
]

ADMIN_USERNAME = "admin"
MIN_PASSWORD_LENGTH = 10
#: bcrypt uses only the first 72 bytes (and bcrypt 5 refuses longer input).
MAX_PASSWORD_BYTES = 72

#: Page keys, as used by the router (`pages/<key>.py`).
PAGES: tuple[str, ...] = (
    "scan", "history", "treatment", "assistant", "analytics", "models", "gallery", "about", "admin",
)
#: Pages that show or create patient records: clinicians and admins only.
PATIENT_PAGES: frozenset[str] = frozenset({"scan", "history", "treatment", "assistant", "analytics"})
_CLINICIAN_PAGES = PATIENT_PAGES | {"models", "about"}
#: Which pages each role may open. Admins manage users and may use every page.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PAGES),
    "clinician": frozenset(_CLINICIAN_PAGES),
    "student": frozenset({"models", "gallery", "about"}),
}

# A valid hash of a random password: checking against it when a username is unknown
# makes a wrong username cost as much time as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt()).decode()


def can_open(role: str | None, page: str) -> bool:
    """True when a user with `role` may open the page with key `page`."""
    return page in PERMISSIONS.get(role or "", frozenset())


def allowed_pages(role: str | None) -> list[str]:
    """Page keys a role may open, in navigation order."""
    return [page for page in PAGES if can_open(role, page)]


# --- Passwords ----------------------------------------------------------------------------------


def check_password_policy(password: str, *, username: str | None = None) -> None:
    """Raise PasswordPolicyError listing every rule the password breaks."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        problems.append(f"at most {MAX_PASSWORD_BYTES} bytes (bcrypt ignores the rest)")
    if not any(c.isalpha() for c in password):
        problems.append("at least one letter")
    if not any(c.isdigit() for c in password):
        problems.append("at least one digit")
    if password.strip() != password:
        problems.append("no leading or trailing spaces")
    if username and username.strip().lower() in password.lower():
        problems.append("must not contain the username")
    if problems:
        raise PasswordPolicyError("Password needs " + "; ".join(problems) + ".")


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:  # malformed hash, or a password over 72 bytes
        return False


def generate_password(length: int = 16) -> str:
    """A random password that satisfies the policy."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isalpha() for c in candidate) and any(c.isdigit() for c in candidate):
            return candidate


# --- Users --------------------------------------------------------------------------------------


def _require_user(session: Session, username: str) -> User:
    user = storage.get_user(session, username=username)
    if user is None:
        raise NotFoundError(f"User {username!r} does not exist.")
    return user


def _would_leave_no_admin(session: Session, user: User) -> bool:
    return user.role == "admin" and not user.disabled and storage.count_active_admins(session) <= 1


def create_user(
    session: Session, *, username: str, name: str, password: str, role: str = "clinician", email: str = ""
) -> User:
    """Create a user after validating the fields and the password policy."""
    try:
        new = UserCreate(username=username, name=name, email=email, role=role, password=password)
    except PydanticValidationError as exc:
        raise ValidationError(storage.validation_message(exc)) from exc
    check_password_policy(password, username=new.username)
    user = User(**new.model_dump(exclude={"password"}), password_hash=hash_password(password))
    user = storage.add_user(session, user=user)
    logger.info("Created %s user %r", user.role, user.username)
    return user


def set_password(session: Session, *, username: str, password: str) -> User:
    """Reset a user's password (admin action, or the user changing their own)."""
    user = _require_user(session, username)
    check_password_policy(password, username=user.username)
    user.password_hash = hash_password(password)
    logger.info("Password reset for %r", user.username)
    return storage.save_user(session, user=user)


def set_role(session: Session, *, username: str, role: str) -> User:
    """Change a user's role; the last active admin cannot be demoted."""
    if role not in ROLES:
        raise ValidationError(f"Role must be one of {', '.join(ROLES)}.")
    user = _require_user(session, username)
    if role != "admin" and _would_leave_no_admin(session, user):
        raise ValidationError("This is the last active admin; make another admin first.")
    user.role = role
    logger.info("Role of %r set to %s", user.username, role)
    return storage.save_user(session, user=user)


def set_disabled(session: Session, *, username: str, disabled: bool) -> User:
    """Disable or re-enable a login; the last active admin cannot be disabled."""
    user = _require_user(session, username)
    if disabled and _would_leave_no_admin(session, user):
        raise ValidationError("This is the last active admin; make another admin first.")
    user.disabled = disabled
    logger.info("User %r %s", user.username, "disabled" if disabled else "enabled")
    return storage.save_user(session, user=user)


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The user when the password is right and the account enabled, else None."""
    user = storage.get_user(session, username=username or "")
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, user.password_hash) or user.disabled:
        return None
    return user


def active_user(session: Session, *, username: str | None) -> User | None:
    """The enabled user with that name, or None (for per-run page guards)."""
    if not username:
        return None
    user = storage.get_user(session, username=username)
    return None if user is None or user.disabled else user


def credentials_for_authenticator(session: Session) -> dict[str, dict[str, dict[str, object]]]:
    """Enabled users in the shape streamlit-authenticator 0.4.2 expects (hashes, not passwords)."""
    return {
        "usernames": {
            user.username: {
                "name": user.name,
                "email": user.email,
                "password": user.password_hash,
                "roles": [user.role],
            }
            for user in storage.list_users(session, include_disabled=False)
        }
    }


def ensure_admin(session: Session, *, password: str | None) -> str | None:
    """Create the ``admin`` user on first run; returns the generated password, if one was made.

    `password` normally comes from LUNGSCAN_ADMIN_PASSWORD and must meet the policy.
    Without it a random password is generated, logged once at WARNING level so it
    shows in the console, and returned. Does nothing when an admin already exists.
    """
    if storage.count_active_admins(session) > 0 or storage.get_user(session, username=ADMIN_USERNAME):
        return None
    generated = None
    if password is None:
        generated = password = generate_password()
    try:
        create_user(session, username=ADMIN_USERNAME, name="Administrator", password=password, role="admin")
    except PasswordPolicyError as exc:
        raise PasswordPolicyError(f"LUNGSCAN_ADMIN_PASSWORD is too weak. {exc}") from exc
    if generated:
        logger.warning(
            "Created user 'admin' with generated password: %s  (shown once; set LUNGSCAN_ADMIN_PASSWORD "
            "or change it on the Admin page)",
            generated,
        )
    else:
        logger.info("Created user 'admin' with the password from LUNGSCAN_ADMIN_PASSWORD")
    return generated


# --- Cookie key ---------------------------------------------------------------------------------


def cookie_key(settings: Settings) -> str:
    """The secret that signs login cookies: settings.cookie_key, else a key kept in data_dir.

    The generated key is created once (64 random URL-safe characters), written with
    mode 600 to ``data_dir/.cookie_key`` and reused, so logins survive restarts.
    """
    if settings.cookie_key is not None and settings.cookie_key.get_secret_value():
        return settings.cookie_key.get_secret_value()
    path = Path(settings.data_dir) / ".cookie_key"
    if path.is_file():
        key = path.read_text(encoding="ascii").strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".cookie_key-")  # created with mode 600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key)
        # link() fails if the file exists, so of two racing processes one key wins and both use it.
        os.link(tmp_name, path)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    finally:
        os.unlink(tmp_name)
    logger.info("Generated a new cookie signing key in %s", path)
    return key
