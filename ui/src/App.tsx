import { KeyringBanner } from "./components/shell/KeyringBanner";
import { Sidebar } from "./components/shell/Sidebar";
import { TopBar } from "./components/shell/TopBar";
import { SECTIONS, useRoute } from "./lib/route";
import type { Section } from "./lib/route";
import { AlertsPage } from "./pages/AlertsPage";
import { AnalyticsPage } from "./pages/AnalyticsPage";
import { ApprovalsPage } from "./pages/ApprovalsPage";
import { AuditPage } from "./pages/AuditPage";
import { BillingPage } from "./pages/BillingPage";
import { ConsumersPage } from "./pages/ConsumersPage";
import { DoctorPage } from "./pages/DoctorPage";
import { FleetPage } from "./pages/FleetPage";
import { InstancesPage } from "./pages/InstancesPage";
import { LogsPage } from "./pages/LogsPage";
import { PlansPage } from "./pages/PlansPage";
import { PromptApisPage } from "./pages/PromptApisPage";
import { ProvidersPage } from "./pages/ProvidersPage";
import { TeamsPage } from "./pages/TeamsPage";

function Page({ section }: { section: Section }) {
  switch (section) {
    case "fleet":
      return <FleetPage />;
    case "instances":
      return <InstancesPage />;
    case "teams":
      return <TeamsPage />;
    case "consumers":
      return <ConsumersPage />;
    case "plans":
      return <PlansPage />;
    case "providers":
      return <ProvidersPage />;
    case "prompt-apis":
      return <PromptApisPage />;
    case "approvals":
      return <ApprovalsPage />;
    case "billing":
      return <BillingPage />;
    case "doctor":
      return <DoctorPage />;
    case "alerts":
      return <AlertsPage />;
    case "logs":
      return <LogsPage />;
    case "analytics":
      return <AnalyticsPage />;
    case "audit":
      return <AuditPage />;
  }
}

/** The shell: sidebar (switcher + sections), top bar (where you are), the page. */
export function App() {
  const { section } = useRoute();
  const title = SECTIONS.find((s) => s.id === section)?.label ?? "";
  return (
    <div className="shell">
      <Sidebar section={section} />
      <div className="main">
        <TopBar title={title} />
        <KeyringBanner />
        <main className="content">
          <Page section={section} />
        </main>
      </div>
    </div>
  );
}
