"""Static catalogues the simulator draws from: products, names, addresses, carriers, tags and
the daily order curve. Deterministic data; the seed decides what is picked."""

PRODUCTS = (
    ("Classic Tee", 1999, 180), ("Crew Sweatshirt", 4999, 520), ("Zip Hoodie", 6499, 640),
    ("Canvas Tote", 2499, 300), ("Wool Beanie", 2299, 110), ("Running Socks 3-pack", 1499, 150),
    ("Denim Jacket", 8999, 900), ("Chino Shorts", 3999, 350), ("Rain Shell", 11999, 480),
    ("Ceramic Mug", 1899, 420), ("Glass Bottle", 2799, 510), ("Scented Candle", 3299, 600),
    ("Leather Wallet", 5499, 120), ("Phone Case", 2999, 60), ("Yoga Mat", 6999, 1500),
    ("Desk Lamp", 7999, 1900), ("Throw Blanket", 8499, 1300), ("Notebook Set", 1599, 400),
    ("Sunglasses", 9999, 90), ("Travel Pillow", 3499, 350), ("Bluetooth Speaker", 12999, 700),
    ("Water Filter", 4499, 800), ("Lip Balm 4-pack", 999, 80), ("Face Serum", 3899, 150),
)
FIRST = ("Ava", "Liam", "Noah", "Emma", "Mia", "Lucas", "Sofia", "Ethan", "Zoe", "Omar", "Priya",
          "Chen", "Grace", "Mateo", "Hana", "Leo", "Nora", "Ivan", "Amara", "Jonas")
LAST = ("Smith", "Garcia", "Kim", "Nguyen", "Patel", "Brown", "Rossi", "Müller", "Okafor", "Silva",
         "Johnson", "Cohen", "Larsen", "Tanaka", "Dubois", "Walker", "Haddad", "Novak")
STREETS = ("Main St", "Oak Ave", "Maple Dr", "Pine St", "Cedar Ln", "Elm St", "Lakeview Rd",
            "Sunset Blvd", "Broadway", "Market St", "Hillcrest Ave", "Park Pl", "River Rd")
# (city, province code, zip prefix or full zip pattern, country, country code)
US_CITIES = (
    ("New York", "NY", "100"), ("Brooklyn", "NY", "112"), ("Los Angeles", "CA", "900"),
    ("San Francisco", "CA", "941"), ("Chicago", "IL", "606"), ("Houston", "TX", "770"),
    ("Austin", "TX", "787"), ("Phoenix", "AZ", "850"), ("Seattle", "WA", "981"),
    ("Denver", "CO", "802"), ("Atlanta", "GA", "303"), ("Miami", "FL", "331"),
    ("Boston", "MA", "021"), ("Portland", "OR", "972"), ("Nashville", "TN", "372"),
    ("Minneapolis", "MN", "554"), ("Philadelphia", "PA", "191"), ("Columbus", "OH", "432"),
)
CA_CITIES = (("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B"), ("Montreal", "QC", "H2X"))
GB_CITIES = (("London", "ENG", "SW1A"), ("Manchester", "ENG", "M1"), ("Leeds", "ENG", "LS1"))
INVALID_ZIPS = ("00000", "99999", "INVALID")

# shipping code -> (title, price cents)
SHIPPING = {
    "standard": ("Standard Shipping", 599),
    "express": ("Express Shipping", 1499),
    "overnight": ("Overnight Shipping", 2999),
    "free": ("Free Shipping", 0),
}
CARRIERS = {
    "standard": ("USPS", "UPS", "FedEx"),
    "free": ("USPS", "UPS"),
    "express": ("UPS", "FedEx", "DHL"),
    "overnight": ("FedEx", "UPS"),
}
CARRIER_AGENT = {"USPS": "usps-tracking-bridge/2.3", "UPS": "ups-quantum-view/5.1",
                  "FedEx": "fedex-webhooks/1.8", "DHL": "dhl-push/3.0"}
WMS_AGENT = "e2a-wms-connector/4.2"

# flag -> probability of appearing on a tagged order (an order may carry several)
FLAG_WEIGHTS = (
    ("rush", 0.30), ("fragile", 0.30), ("gift_wrap", 0.22), ("oversized", 0.12),
    ("quality_check", 0.12), ("photo", 0.08), ("custom_packaging", 0.08), ("hazmat", 0.04),
)
OTHER_TAGS = ("vip", "wholesale", "subscription", "first-order", "influencer", "b2b")

# Relative order volume by local hour of day: quiet nights, a daytime peak, a lunch and evening bump.
HOUR_WEIGHTS = (
    0.6, 0.4, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 2.2, 3.4, 4.2, 4.6,
    5.0, 4.8, 4.4, 4.2, 4.0, 3.8, 4.1, 4.6, 4.4, 3.4, 2.2, 1.2,
)

CANCEL_REASONS = ("customer", "customer", "inventory", "fraud", "other")
FAIL_REASONS = ("CUSTOMER_UNAVAILABLE", "NO_SAFE_LOCATION", "ACCESS_RESTRICTED", "BUSINESS_CLOSED")
