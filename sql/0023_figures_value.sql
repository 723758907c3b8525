-- The cross-practice ROI report in one query (issue 27): enclave_figures also reads the columns
-- of leads that value and attribution are made of, and ad spend. None of them is PHI.
grant select (source, medium, campaign, qualification, value_cents) on enclave.leads to enclave_figures;
grant select on enclave.ad_spend to enclave_figures;
