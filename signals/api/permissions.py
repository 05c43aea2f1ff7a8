from rest_framework.permissions import SAFE_METHODS, BasePermission


class CanPublishSignals(BasePermission):
    """Any authenticated user reads; only staff or holders of signals.add_signal write."""

    message = "Only staff or users with the 'signals.add_signal' permission may create signals."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        return bool(user.is_staff or user.has_perm("signals.add_signal"))
