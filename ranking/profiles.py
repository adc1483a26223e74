"""Which ranking profile ranks a user: the active profiles' traffic shares,
else settings.RANKING_DEFAULT_PROFILE."""

from __future__ import annotations

from django.conf import settings

from ranking.models import RankingProfile
from ranking.params import RankingParams, assign_profile


def profile_for_user(user_id: int) -> RankingParams:
    profiles = {p.name: p for p in RankingProfile.objects.filter(is_active=True)}
    name = assign_profile(user_id, [(p.name, p.traffic_share) for p in profiles.values()])
    if name is None:
        default: RankingParams = settings.RANKING_DEFAULT_PROFILE
        return default
    return profiles[name].params()
