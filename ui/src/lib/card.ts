// Client-side checks of a card before it goes to the backend (which sends it
// to the processor once, for a token). The number never leaves component state.

export interface CardErrors {
  number?: string | undefined;
  exp_month?: string | undefined;
  exp_year?: string | undefined;
  cvc?: string | undefined;
}

/** The number without spaces (and dashes people paste). */
export function cardDigits(number: string): string {
  return number.replace(/[\s-]/g, "");
}

export function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

export function validateCard(
  number: string,
  month: string,
  year: string,
  cvc: string,
  today: Date = new Date(),
): CardErrors {
  const errors: CardErrors = {};
  const digits = cardDigits(number);
  if (!digits) errors.number = "Enter the card number.";
  else if (!/^\d+$/.test(digits)) errors.number = "Digits only.";
  else if (digits.length < 12 || digits.length > 19) errors.number = "A card number has 12 to 19 digits.";
  else if (!luhn(digits)) errors.number = "This is not a valid card number (check digit mismatch): check for a typo.";

  const m = Number(month);
  if (!/^\d{1,2}$/.test(month.trim()) || m < 1 || m > 12) errors.exp_month = "Month 1–12.";

  const yText = year.trim();
  let y = Number(yText);
  if (/^\d{2}$/.test(yText)) y += 2000;
  const thisYear = today.getFullYear();
  if (!/^\d{2}(\d{2})?$/.test(yText)) errors.exp_year = "A year like 2028.";
  else if (y < thisYear) errors.exp_year = "This year is in the past.";
  else if (!errors.exp_month && y === thisYear && m < today.getMonth() + 1) errors.exp_month = "This card has expired.";

  if (!/^\d{3,4}$/.test(cvc.trim())) errors.cvc = "3 or 4 digits.";
  return errors;
}

/** The four-digit year the user meant ("28" → 2028). */
export function fullYear(year: string): number {
  const y = Number(year.trim());
  return year.trim().length === 2 ? 2000 + y : y;
}
