"""What the benchmark asks: the exact documents and requests, for the gateway and the floor."""

from __future__ import annotations

from dataclasses import dataclass

CATALOG_PAGE = """query CatalogPage {
  products(first: 20, orderBy: {field: CREATED_AT, direction: DESC}) {
    edges {
      cursor
      node {
        id databaseId sku name
        price { amount currency }
        inStock averageRating
        category { id name slug }
        reviews(first: 3) {
          edges { cursor node { id rating title author { id name } } }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

PRODUCT_PAGE = """query ProductPage($id: ID!) {
  product(id: $id) {
    id databaseId sku name description
    price { amount currency }
    inStock averageRating createdAt
    category { id name slug }
    reviews(first: 10) {
      totalCount
      edges { cursor node { id rating title body createdAt author { id name } } }
    }
  }
}"""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, object] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    gateway: Request
    floor: Request | None  # None: compared with the ceiling instead
    graphql: bool = False


def scenarios(product_id: int, product_gid: str) -> list[Scenario]:
    """Every scenario; ``product_id`` is the product the detail pages show."""
    catalog = {"query": CATALOG_PAGE, "operationName": "CatalogPage"}
    product = {"query": PRODUCT_PAGE, "operationName": "ProductPage"}
    return [
        Scenario("catalog", "GraphQL catalog page",
                 Request("POST", "/graphql", catalog),
                 Request("POST", "/graphql/catalog", catalog), graphql=True),
        Scenario("detail", "GraphQL product detail page",
                 Request("POST", "/graphql", {**product, "variables": {"id": product_gid}}),
                 Request("POST", "/graphql/product", {**product, "variables": {"id": product_id}}),
                 graphql=True),
        Scenario("rest-list", "REST GET /api/v2/products?limit=20",
                 Request("GET", "/api/v2/products?limit=20"),
                 Request("GET", "/api/v2/products?limit=20")),
        Scenario("rest-detail", f"REST GET /api/v1/products/{product_id}",
                 Request("GET", f"/api/v1/products/{product_id}"),
                 Request("GET", f"/api/v1/products/{product_id}")),
        Scenario("cached", "GraphQL catalog page, response cache warm",
                 Request("POST", "/graphql", catalog), None, graphql=True),
        Scenario("health", "GET /health/live", Request("GET", "/health/live"),
                 Request("GET", "/health/live")),
    ]


NAMES = ("catalog", "detail", "rest-list", "rest-detail", "cached", "health")
