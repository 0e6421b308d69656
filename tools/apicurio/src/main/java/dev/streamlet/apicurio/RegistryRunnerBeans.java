package dev.streamlet.apicurio;

import java.util.List;

import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;

/**
 * Beans that a Quarkus build-time extension of Apicurio Registry would contribute, for the
 * registry runner built here without that extension (its build-time module is not on Maven Central).
 */
@ApplicationScoped
public class RegistryRunnerBeans {

    /**
     * The registry's dynamic (admin-settable at run time) properties: none are offered, so each one
     * keeps its static configuration value. The Confluent-compatible API does not depend on them.
     */
    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigProperties() {
        return new DynamicConfigPropertyList(List.of());
    }
}
