//! Wire types shared by the OKLA registry, serving fleet and client.
