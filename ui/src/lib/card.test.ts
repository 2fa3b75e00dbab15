import { describe, expect, it } from "vitest";
import { cardDigits, fullYear, luhn, validateCard } from "./card";

// A fixed day: the checks take their "today" as an argument.
const today = new Date(2027, 2, 15); // 15 March 2027

describe("card checks", () => {
  it("reads a number as people paste it", () => {
    expect(cardDigits("4242 4242-4242 4242")).toBe("4242424242424242");
  });

  it("knows a valid check digit from a typo", () => {
    expect(luhn("4242424242424242")).toBe(true);
    expect(luhn("4242424242424241")).toBe(false);
    expect(luhn("4000000000009995")).toBe(true);
  });

  it("accepts a good card and names each bad field", () => {
    expect(validateCard("4242 4242 4242 4242", "12", "2030", "123", today)).toEqual({});
    const bad = validateCard("4242 4242 4242 4241", "13", "30x", "12", today);
    expect(Object.keys(bad).sort()).toEqual(["cvc", "exp_month", "exp_year", "number"]);
    expect(bad.number).toContain("check digit");
    expect(validateCard("", "1", "2030", "123", today).number).toBe("Enter the card number.");
    expect(validateCard("1234", "1", "2030", "123", today).number).toContain("12 to 19");
  });

  it("refuses a past expiry by month and by year, around the turn of a year", () => {
    expect(validateCard("4242424242424242", "2", "2027", "123", today).exp_month).toBe("This card has expired.");
    expect(validateCard("4242424242424242", "3", "2027", "123", today)).toEqual({});
    expect(validateCard("4242424242424242", "12", "2026", "123", today).exp_year).toBe("This year is in the past.");
    const newYear = new Date(2028, 0, 1);
    expect(validateCard("4242424242424242", "12", "27", "123", newYear).exp_year).toBe("This year is in the past.");
    expect(validateCard("4242424242424242", "1", "28", "123", newYear)).toEqual({});
  });

  it("reads two-digit years in this century", () => {
    expect(fullYear("28")).toBe(2028);
    expect(fullYear(" 2031 ")).toBe(2031);
  });
});
