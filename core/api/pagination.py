"""Page-number pagination with a client-chosen page size, capped."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

if TYPE_CHECKING:  # DRF imports this module while defining GenericAPIView: no runtime import.
    from django.db.models import QuerySet
    from rest_framework.generics import GenericAPIView
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.serializers import BaseSerializer


class Pagination(PageNumberPagination):
    """`?page=N&page_size=M` (M at most 200). An out-of-range page is a 404 error.

    A page size that is not a positive whole number is a 400 error, not silently the default.
    """

    page_size_query_param = "page_size"
    page_size_query_description = "Results per page: a whole number of at least 1; more than 200 is capped at 200."
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        digits = raw.lstrip("0")
        if not re.fullmatch(r"[0-9]+", raw) or not digits:
            raise ValidationError({self.page_size_query_param: ["Give a whole number of at least 1."]})
        # Compare as text first: int() of thousands of digits is refused by Python itself.
        return self.max_page_size if len(digits) > 9 else min(int(digits), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


def paginated_response(
    view: GenericAPIView[Any], queryset: QuerySet[Any], serializer_class: type[BaseSerializer[Any]]
) -> Response:
    """One page of `queryset` rendered with `serializer_class`, for a view's extra actions."""
    page = view.paginate_queryset(queryset)
    return view.get_paginated_response(serializer_class(page, many=True).data)
