"""Page-number pagination with a client-chosen page size, capped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.pagination import PageNumberPagination

if TYPE_CHECKING:  # DRF imports this module while defining GenericAPIView: no runtime import.
    from django.db.models import QuerySet
    from rest_framework.generics import GenericAPIView
    from rest_framework.response import Response
    from rest_framework.serializers import BaseSerializer


class Pagination(PageNumberPagination):
    """`?page=N&page_size=M` (M at most 200). An out-of-range page is a 404 error."""

    page_size_query_param = "page_size"
    max_page_size = 200


def paginated_response(
    view: GenericAPIView[Any], queryset: QuerySet[Any], serializer_class: type[BaseSerializer[Any]]
) -> Response:
    """One page of `queryset` rendered with `serializer_class`, for a view's extra actions."""
    page = view.paginate_queryset(queryset)
    return view.get_paginated_response(serializer_class(page, many=True).data)
