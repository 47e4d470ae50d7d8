// Shopping cart state for the web shop, kept in localStorage so that it survives page reloads.
//
// Prices are stored in cents as integers to avoid floating point errors. The cart enforces the
// shop's rules: at most 10 units of any product, free shipping from 50 euros, and one coupon code
// per order.

const STORAGE_KEY = "shop.cart.v2";
const MAX_UNITS_PER_PRODUCT = 10;
const FREE_SHIPPING_FROM_CENTS = 5000;
const SHIPPING_CENTS = 495;

const COUPONS = {
  WELCOME10: { kind: "percent", value: 10, minimumCents: 2000 },
  FREESHIP: { kind: "shipping" },
};

export class Cart {
  constructor(storage = window.localStorage) {
    this.storage = storage;
    const saved = JSON.parse(storage.getItem(STORAGE_KEY) ?? "null");
    this.items = saved?.items ?? {};
    this.coupon = saved?.coupon ?? null;
  }

  add(product, units = 1) {
    const current = this.items[product.id]?.units ?? 0;
    const total = Math.min(current + units, MAX_UNITS_PER_PRODUCT);
    this.items[product.id] = { name: product.name, priceCents: product.priceCents, units: total };
    this.save();
    return total;
  }

  remove(productId) {
    delete this.items[productId];
    this.save();
  }

  applyCoupon(code) {
    const coupon = COUPONS[code.trim().toUpperCase()];
    if (!coupon) throw new Error(`Unknown coupon code: ${code}`);
    if (coupon.minimumCents && this.subtotalCents() < coupon.minimumCents) {
      throw new Error("The order is below the minimum value for this coupon.");
    }
    this.coupon = code.trim().toUpperCase(); // a new code replaces the previous one
    this.save();
  }

  subtotalCents() {
    return Object.values(this.items).reduce((sum, item) => sum + item.priceCents * item.units, 0);
  }

  totals() {
    const subtotal = this.subtotalCents();
    const coupon = this.coupon ? COUPONS[this.coupon] : null;
    const discount = coupon?.kind === "percent" ? Math.round((subtotal * coupon.value) / 100) : 0;
    // The free-shipping threshold is checked against the subtotal before discounts.
    const freeShipping = subtotal >= FREE_SHIPPING_FROM_CENTS || coupon?.kind === "shipping";
    const shipping = subtotal === 0 || freeShipping ? 0 : SHIPPING_CENTS;
    return { subtotal, discount, shipping, total: subtotal - discount + shipping };
  }

  save() {
    this.storage.setItem(STORAGE_KEY, JSON.stringify({ items: this.items, coupon: this.coupon }));
  }
}
