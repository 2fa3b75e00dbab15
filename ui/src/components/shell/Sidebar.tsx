import { hrefOf, SECTIONS } from "../../lib/route";
import type { Section } from "../../lib/route";
import { InstanceSwitcher } from "./InstanceSwitcher";

export function Sidebar({ section }: { section: Section }) {
  return (
    <aside className="sidebar">
      <div className="brand">Tollgate</div>
      <InstanceSwitcher />
      <nav className="sections" aria-label="Sections">
        <ul>
          {SECTIONS.map((s) => (
            <li key={s.id}>
              <a
                href={hrefOf(s.id)}
                className={s.id === section ? "section-link section-active" : "section-link"}
                aria-current={s.id === section ? "page" : undefined}
                data-testid={`nav-${s.id}`}
              >
                {s.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
    </aside>
  );
}
