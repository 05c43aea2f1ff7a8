from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from signals.selectors import signal_list, signal_payloads


@login_required
def dashboard(request):
    signals = signal_payloads(signal_list()[:100])
    return render(request, "dashboard/index.html", {"signals": signals})
