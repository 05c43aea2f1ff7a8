"""Fixtures for the signals app's tests."""
import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Django's default PBKDF2 costs ~0.5 s per user on CI cores; these tests check
    # permissions, not password storage.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
