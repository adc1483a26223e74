"""Authors to suggest to a user (cold start, GET /api/v1/suggestions/ in the feed API).

Friends of friends first: the authors most followed by the people the user
follows; then, to fill up, the most followed authors overall. Never the user,
an author they already follow, a muted author, or a deactivated account.
Read from Postgres, the source of truth for the graph: the answer must honour a
follow or mute made a moment ago, which the CDC replicas may not have yet.
"""

from __future__ import annotations

from django.db.models import Count

from feed.models import Follow, Mute, User


def suggested_authors(user_id: int, limit: int = 20) -> list[int]:
    followed = set(Follow.objects.filter(follower_id=user_id).values_list("followee_id", flat=True))
    excluded = followed | set(Mute.objects.filter(user_id=user_id).values_list("muted_id", flat=True)) | {user_id}
    inactive = User.objects.filter(is_active=False).values("pk")

    def top(follows) -> list[int]:
        rows = (follows.exclude(followee_id__in=excluded).exclude(followee_id__in=inactive)
                .values("followee_id").annotate(n=Count("id")).order_by("-n", "followee_id")[:limit])
        return [row["followee_id"] for row in rows]

    suggestions = top(Follow.objects.filter(follower_id__in=followed)) if followed else []
    if len(suggestions) < limit:
        for author in top(Follow.objects.all()):
            if author not in suggestions:
                suggestions.append(author)
            if len(suggestions) == limit:
                break
    return suggestions
